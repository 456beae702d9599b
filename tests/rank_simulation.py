"""Simulated class means of a gradient measure and a behavioural one over text blocks, in the regimes real data can be in."""
import numpy as np

# name -> (classes, sd of the true class means, noise sd of a class mean, whether both measures share their true
# means); the paper model has 14 classes (9 POS + 5 frequency bins), the demo 5
REGIMES = {
    "few classes, signal-dominated, unrelated": (5, 1.0, 0.05, False),
    "few classes, noise as large as the classes, unrelated": (5, 1.0, 1.0, False),
    "many classes, signal-dominated, unrelated": (14, 1.0, 0.05, False),
    "many classes, pure noise": (14, 0.0, 1.0, False),
    "many classes, noise as large as the classes, unrelated": (14, 1.0, 1.0, False),
    "few classes, signal-dominated, related": (5, 1.0, 0.05, True),
    "many classes, signal-dominated, related": (14, 1.0, 0.05, True),
    "many classes, moderate noise, related": (14, 1.0, 0.3, True),
}


def simulated(rng, classes, spread, noise, related, blocks=10):
    """Class means of two measures over `blocks` text blocks: true means of sd `spread` (the same ones when related),
    each block's noise of sd noise·√blocks (so that a mean's is `noise`), half of the gradient's noise shared by the
    behaviour (the same text). Returns g [C], g_loo [C][N], b, b_loo and the true means mu_g, mu_b [C]."""
    mu_g = rng.normal(size=classes) * spread
    mu_b = mu_g.copy() if related else rng.normal(size=classes) * spread
    noise_g = noise * np.sqrt(blocks) * rng.normal(size=(blocks, classes))
    block_g = mu_g + noise_g
    block_b = mu_b + noise * np.sqrt(blocks) * rng.normal(size=(blocks, classes)) + 0.5 * noise_g
    g, b = block_g.mean(axis=0), block_b.mean(axis=0)
    return g, ((g * blocks - block_g) / (blocks - 1)).T, b, ((b * blocks - block_b) / (blocks - 1)).T, mu_g, mu_b


def rates(regime, datasets, seed):
    """(share of 'agree', of 'disagree', of intervals covering the true means' Spearman ρ; NaN without true class
    differences) of findings.rank_statistics over `datasets` simulated data sets of a regime."""
    import scipy.stats

    from state_gradients.report import findings

    classes, spread, noise, related = REGIMES[regime]
    rng = np.random.default_rng(seed)
    words, covered = [], 0
    for _ in range(datasets):
        g, g_loo, b, b_loo, mu_g, mu_b = simulated(rng, classes, spread, noise, related)
        stats = findings.rank_statistics(g, g_loo, b, b_loo, rng)
        words.append(findings.agreement_word(stats))
        if spread:
            truth = scipy.stats.spearmanr(mu_g, mu_b).statistic
            covered += stats["lo"] - 1e-12 <= truth <= stats["hi"] + 1e-12
    return (words.count("agree") / datasets, words.count("disagree") / datasets,
            covered / datasets if spread else float("nan"))

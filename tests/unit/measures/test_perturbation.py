"""The behavioural measures' core: truncated and full-history losses, a replaced word's effect and its G·Δx."""
import numpy as np
import pytest
import tensorflow as tf

from state_gradients.engine.recurrent import state_gradients
from state_gradients.engine.transformer import TransformerStateGradients
from state_gradients.measures import perturbation
from state_gradients.models.lm import LanguageModel
from state_gradients.models.transformer import TransformerLM

V, E, H = 23, 5, 7


def _model(cell="LSTM", layers=2):
    # init_scale 0.5: gates far from their linear range, so that second-order terms are visible
    return LanguageModel(V, E, H, layers, cell, forget_bias=1.0, init_scale=0.5, dtype=tf.float64, seed=3)


def _transformer(embedding=E):
    # E 5 != D 8: the input projection is in the path; init_scale 0.3: attention far from uniform
    return TransformerLM(V, embedding, 8, 2, 2, 16, 40, init_scale=0.3, dtype=tf.float64, seed=3)


def _stream(n, seed=0):
    return np.random.default_rng(seed).integers(0, V, size=n).astype(np.int32)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_the_whole_history_as_context_is_the_full_loss(cell):
    # a truncated context that reaches back to the stream's start, from the same zero state, is the full history;
    # float64 with different row counts in the matmuls: equal to rounding (1e-12 of a loss of about 3)
    model = _model(cell)
    stream = _stream(40)
    full, _ = perturbation.stream_losses(model, stream)
    for p in (0, 7, 38):
        got = perturbation.context_losses(model, stream[None, :p + 1], [stream[p + 1]])
        assert abs(got[0] - full[p]) <= 1e-12 * abs(full[p])
    # a shorter context is a different loss (the check can fail)
    short = perturbation.context_losses(model, stream[None, 30:39], [stream[39]])
    assert abs(short[0] - full[38]) > 1e-6


def test_a_small_change_moves_the_state_by_g_times_delta_to_first_order():
    # the remainder ‖Δs − G·δ‖ of a smooth map is O(ε²): halving ε divides it by about 4 (3.2 to 4.8 allows the
    # third-order term at these ε); G·δ comes from forward mode, Δs from two forward passes
    model = _model()
    stream = _stream(12, seed=1)
    ids = np.stack([stream[2:9], stream[3:10]])                  # k = 6: x_{t-6} .. x_t, two rows
    state = model.zero_state(2)
    direction = np.random.default_rng(2).normal(size=(2, E))
    remainders = []
    for eps in (1e-2, 5e-3, 2.5e-3):
        out = perturbation.perturb_input(model, state, ids, eps * direction, layer=1, component=0)
        remainders.append(np.linalg.norm(out["delta_state"] - out["predicted"], axis=1))
    for big, small in zip(remainders, remainders[1:]):
        assert np.all((big / small > 3.2) & (big / small < 4.8)), big / small


def test_the_prediction_is_the_engines_state_gradient():
    # G·Δx of the forward-mode run equals the engine's Jacobian d s_t / d x_{t-k} times Δx (float64: 1e-12)
    model = _model()
    stream = _stream(11, seed=4)
    window = stream[None, :10]
    k, t = 4, 9
    g = state_gradients(model, window, model.zero_state(1), layer=1, component=0, time_steps=[t], max_delay=k + 1)
    targets, jac = g[k]
    assert list(targets) == [t]
    states = model.run_layers(model.embed(tf.constant(window)), model.zero_state(1))
    entering = tuple(tuple(s[:, t - k - 1] for s in layer) for layer in states)   # the state after t - k - 1
    new = np.array([5])
    out = perturbation.replacement_effects(model, entering, window[:, t - k:t + 1], new, layer=1, component=0,
                                           targets=[stream[t + 1]])
    embedding = model.embedding.numpy()
    delta = embedding[5] - embedding[window[0, t - k]]
    np.testing.assert_allclose(out["predicted"][0], jac[0, 0] @ delta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["delta_x"][0], delta, rtol=0, atol=0)
    # the replaced run's loss change equals the stream's losses with and without the replacement
    changed = stream.copy()
    changed[t - k] = 5
    before, _ = perturbation.stream_losses(model, stream)
    after, _ = perturbation.stream_losses(model, changed)
    assert abs(out["delta_loss"][0] - (after[t] - before[t])) < 1e-12


def test_block_sums_give_the_jackknife_of_class_means():
    # two classes over three blocks: the mean and its delete-one-block means against a direct computation
    sums = perturbation.BlockSums(("x",), 3, (1, 2), 2)
    rng = np.random.default_rng(5)
    data = {}
    for block in range(3):
        for delay in (1, 2):
            values = rng.normal(size=6)
            masks = np.array([np.ones(6), (np.arange(6) % 2 == 0).astype(float)])
            sums.add(block, delay, masks, {"x": values})
            data[block, delay] = (values, masks)
    full, loo, counts = sums.means("x")
    for d, delay in enumerate((1, 2)):
        for c in range(2):
            pick = [data[b, delay][0][data[b, delay][1][c] > 0] for b in range(3)]
            assert full[d, c] == pytest.approx(np.concatenate(pick).mean(), abs=1e-15)
            for j in range(3):
                rest = np.concatenate([v for b, v in enumerate(pick) if b != j])
                assert loo[j, d, c] == pytest.approx(rest.mean(), abs=1e-15)
    out = sums.intervals("x")
    assert out["lo"].shape == (2, 2) and np.all(out["lo"] <= out["value"]) and np.all(out["value"] <= out["hi"])
    # the delete-one-block jackknife of a mean: se² = (N - 1) / N · Σ (loo_j - mean(loo))² when the blocks are equal
    for d in range(2):
        se = np.sqrt((3 - 1) / 3 * np.sum((loo[:, d, 0] - loo[:, d, 0].mean()) ** 2))
        assert out["se"][d, 0] == pytest.approx(se, rel=1e-12)
    # a class absent from a block: that block is left out (2 blocks, df 1), not a NaN interval
    sparse = perturbation.BlockSums(("x",), 3, (1,), 2)
    for block, values in ((0, [1.0, 2.0]), (1, [3.0, 5.0]), (2, [4.0, 4.0])):
        sparse.add(block, 1, np.array([[1, 1], [1, 1] if block else [0, 0]]), {"x": values})
    stats = sparse.intervals("x")
    assert stats["df"][0, 1] == 1 and np.isfinite(stats["se"][0, 1]) and stats["value"][0, 1] == pytest.approx(4.0)


@pytest.mark.parametrize("family", ["recurrent", "transformer"])
def test_dropped_words_are_skipped_exactly(family):
    # a row with words dropped by the keep mask reads as the same row without them (rows of different kept lengths
    # in one batch): a recurrent model skips their steps, a Transformer neither attends to them nor counts them in
    # the positions; float64 with different row counts and lengths: equal to rounding (1e-12)
    model = _model() if family == "recurrent" else _transformer()
    stream = _stream(30, seed=6)
    contexts = np.stack([stream[0:12], stream[5:17], stream[10:22]])
    keep = np.ones((3, 12), bool)
    keep[0, [0, 4, 5]] = False
    keep[2, :7] = False
    targets = stream[[12, 17, 22]]
    got = perturbation.kept_context_losses(model, contexts, keep, targets)
    for r in range(3):
        want = perturbation.context_losses(model, contexts[r][keep[r]][None], targets[r:r + 1])[0]
        assert abs(got[r] - want) <= 1e-12 * abs(want)
    full = perturbation.context_losses(model, contexts, targets)
    assert abs(got[1] - full[1]) <= 1e-12 * abs(got[1])
    assert abs(got[0] - full[0]) > 1e-6                      # the dropped words mattered (the check can fail)


def test_only_the_far_words_are_rearranged():
    rng = np.random.default_rng(7)
    contexts = np.arange(20).reshape(2, 10)
    shuffled = perturbation.reorder_far(contexts, 3, "shuffled", rng)
    np.testing.assert_array_equal(shuffled[:, -3:], contexts[:, -3:])
    assert all(sorted(a) == sorted(b) for a, b in zip(shuffled[:, :7], contexts[:, :7]))
    assert not np.array_equal(shuffled, contexts)
    np.testing.assert_array_equal(perturbation.reorder_far(contexts, 3, "reversed", rng)[:, :7], contexts[:, 6::-1])


def test_a_transformers_whole_window_as_context_is_the_full_loss():
    # a context of the window's first t + 1 words, read from position 0, is what the window computes at t
    # (float64, different sequence lengths in the matmuls: equal to rounding, 1e-12 of a loss of about 3)
    model = _transformer()
    stream = _stream(31, seed=8)
    full, _ = perturbation.stream_losses(model, stream)
    for t in (0, 11, 29):
        got = perturbation.context_losses(model, stream[None, :t + 1], [stream[t + 1]])
        assert abs(got[0] - full[t]) <= 1e-12 * abs(full[t])
    # the last 12 words read from position 0 are another context (the check can fail)
    assert abs(perturbation.context_losses(model, stream[None, 18:30], [stream[30]])[0] - full[29]) > 1e-6


@pytest.mark.parametrize("component", [0, 1])
def test_a_transformers_prediction_is_the_engines_state_gradient(component):
    # replacing the word at t - k in a window: G·Δx of the forward-mode run equals the engine's Jacobian
    # d s_t / d x_{t-k} times Δx (float64: 1e-12), the residual stream after the top block (0) or the final
    # LayerNorm's output (1); the state and loss changes are those of the two windows' forward passes
    model = _transformer()
    stream = _stream(21, seed=10)
    window = stream[None, :20]
    rows = [(15, 3), (19, 0), (19, 12)]
    engine = TransformerStateGradients(model, layer=1, component=component, time_steps=[15, 19], max_delay=13,
                                       num_steps=20)
    jac = engine.jacobians(window, ())[0]
    new = np.array([4, 7, 2])
    ts = np.array([t for t, _ in rows])
    position = np.array([t - k for t, k in rows])
    out = perturbation.replacement_effects(model, (), np.repeat(window, 3, axis=0), new, layer=1,
                                           component=component, position=position, at=ts, targets=stream[ts + 1])
    embedding = model.embedding.numpy()
    streams = model.run_layers(model.embed(tf.constant(window)))
    before = streams[-1][0].numpy()[0]
    for r, (t, k) in enumerate(rows):
        targets_k, g = jac[k]
        delta = embedding[new[r]] - embedding[window[0, t - k]]
        np.testing.assert_allclose(out["predicted"][r], g[0, list(targets_k).index(t)] @ delta, rtol=0, atol=1e-12)
        changed = stream.copy()
        changed[t - k] = new[r]
        after = model.run_layers(model.embed(tf.constant(changed[None, :20])))[-1][0].numpy()[0]
        if component == 0:
            np.testing.assert_allclose(out["delta_state"][r], after[t] - before[t], rtol=0, atol=1e-12)
        loss_before, _ = perturbation.stream_losses(model, stream)
        loss_after, _ = perturbation.stream_losses(model, changed)
        assert abs(out["delta_loss"][r] - (loss_after[t] - loss_before[t])) < 1e-12


def test_a_small_change_moves_a_transformers_state_by_g_times_delta_to_first_order():
    # as for the recurrent model: the remainder is O(ε²), halving ε divides it by about 4
    model = _transformer()
    stream = _stream(20, seed=11)
    ids = np.repeat(stream[None], 2, axis=0)
    direction = np.random.default_rng(12).normal(size=(2, E))
    remainders = []
    for eps in (1e-2, 5e-3, 2.5e-3):
        out = perturbation.perturb_input(model, (), ids, eps * direction, layer=0, component=0, position=[3, 10],
                                         at=[17, 10])
        remainders.append(np.linalg.norm(out["delta_state"] - out["predicted"], axis=1))
    for big, small in zip(remainders, remainders[1:]):
        assert np.all((big / small > 3.2) & (big / small < 4.8)), big / small


def test_same_class_draws_stay_in_the_class_at_its_unigram_frequencies():
    # words 0-5 in class 0 (4 and 5 with half their weight elsewhere: still mainly class 0), 6-8 in class 1, 9 in
    # none; each draw differs from the replaced word and, over 20,000 draws, matches the class's unigram share
    # renormalised without the replaced word within 5 standard errors of a binomial proportion
    unigram = np.arange(1, 11, dtype=float)
    unigram /= unigram.sum()
    table = np.zeros((2, 10))
    table[0, :6] = 1.0
    table[0, 4:6] = table[1, 4:6] = 0.5
    table[0, 4:6] = 0.6
    table[1, 6:9] = 1.0
    # no classes at all: no word has a main class, and there is no pool to draw from
    none_main, none_pools = perturbation.class_pools(unigram, np.zeros((0, 10)))
    assert np.all(none_main == -1) and none_pools.shape == (0, 10)
    main, pools = perturbation.class_pools(unigram, table)
    np.testing.assert_array_equal(main, [0, 0, 0, 0, 0, 0, 1, 1, 1, -1])
    np.testing.assert_allclose(pools.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    rng = np.random.default_rng(13)
    original = np.full(20000, 2)
    new = perturbation._draw_other(rng, pools[main[original]], original)
    assert set(new) <= {0, 1, 3, 4, 5}
    want = np.where(main == 0, unigram, 0.0)
    want[2] = 0
    want /= want.sum()
    got = np.bincount(new, minlength=10) / len(new)
    se = np.sqrt(want * (1 - want) / len(new))
    assert np.all(np.abs(got - want) <= 5 * se + 1e-15)

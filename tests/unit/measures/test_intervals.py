"""sg-intervals: its CSV files recomputed from the block files and the averages, and its refusals."""
import numpy as np
import pytest

from aux_scripts import intervals as sg_intervals
from state_gradients.core import formats, lm_data
from state_gradients.core.configuration import config_from_dict
from state_gradients.engine.recurrent import NUCLEAR_STRIDE
from state_gradients.files import gradient_files
from state_gradients.measures import intervals
from state_gradients.measures import analysis, uncertainty
from state_gradients.models.lm import LanguageModel
from state_gradients.passes import gradient_pass

U32 = 2.0 ** -24


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A pass over the tiny tagged corpus with 5 blocks, a D, and sg-intervals' output."""
    from tests import tiny_corpus

    root = tiny_corpus.write(tmp_path_factory.mktemp("intervals"), valid_lines=30)
    values = dict(save_path=str(root / "model"), log_dir=str(root / "logs"), data_path=str(root / "data"),
                  vocab=False, batch_size=1, num_steps=6, size=5, embedding_size=3, basic_cell="GRU",
                  num_layers=1, init_scale=0.5, softmax="full", grad_interm="cell", time_step="all", max_delay=3,
                  grad_dir=str(root / "grads"), grad_dtype="float32", grad_average=True, grad_dump=False,
                  grad_blocks=5, pos_mapping=str(root / "pos_mapping.txt"),
                  pos_classes=f"{root / 'nouns.txt'},{root / 'verbs.txt'}")
    rng = np.random.default_rng(2)
    d = np.linalg.cholesky(np.cov(rng.normal(size=(50, 3)), rowvar=False))
    np.save(root / "D.npy", d)
    # the dump: every G, for the magnitude and the per-occurrence nuclear norm; the averaged pass keeps the
    # occurrence measures with D
    for grad_dir, dump in (("grads", False), ("dump", True)):
        extra = {} if dump else {"grad_norm_file": str(root / "D.npy")}
        config = config_from_dict({**values, "grad_dir": str(root / grad_dir), "grad_dump": dump, **extra},
                                  train=False)
        corpus = lm_data.load_corpus(config, need_train=True, need_valid=True, need_test=False)
        gradient_pass.run_gradient_pass(config, LanguageModel.from_config(config, corpus.vocab_size), corpus,
                                        log=lambda s: None)
    assert sg_intervals.main([str(root / "grads"), str(root / "D.npy"), "--out", str(root / "out")]) == 0
    rows = intervals.read_csv(str(root / "out" / intervals.INTERVALS_CSV), intervals.INTERVAL_COLUMNS)
    reps = intervals.read_csv(str(root / "out" / intervals.REPLICATES_CSV), intervals.REPLICATE_COLUMNS)
    return root, d, rows, reps


def test_sv_sums_equal_those_of_the_averages(run):
    root, d, rows, _ = run
    assert {r["class"] for r in rows} == {"overall", "nouns", "verbs"} and {r["delay"] for r in rows} == {0, 1, 2}
    blocks = gradient_files.read_blocks(str(root / "grads"))
    names = ["overall", "nouns", "verbs"]
    for r in rows:
        cls = None if r["class"] == "overall" else r["class"]
        mean = np.load(analysis.average_path(str(root / "grads"), r["delay"], cls)).astype(np.float64)
        assert r["count"] == int(open(analysis.count_path(str(root / "grads"), r["delay"], cls)).read())
        # both differ from the float64 mean by their float32 roundings: u |S_b| / n per block file and
        # u |mean| for the average file, elementwise; a sum of at most min(H, E) singular values moves by
        # at most min(H, E) times the spectral norm of the change, which is <= its Frobenius norm times |D|_2
        c, di = names.index(r["class"]), list(blocks[0]["delays"]).index(r["delay"])
        change = U32 * (sum(np.abs(b["sums"][di, c]) for b in blocks) / r["count"] + np.abs(mean))
        bound = min(mean.shape) * np.linalg.norm(change) * np.linalg.norm(d, 2)
        assert abs(r["sv_sum"] - analysis.singular_values(mean, d).sum()) <= bound


def test_replicates_recomputed_from_the_block_files(run):
    root, d, _, reps = run
    blocks = gradient_files.read_blocks(str(root / "grads"))
    names = ["overall", "nouns", "verbs"]
    for r in reps:
        c, di, j = names.index(r["class"]), list(blocks[0]["delays"]).index(r["delay"]), r["block"] - 1
        rest = [b for i, b in enumerate(blocks) if i != j]
        total = sum(b["sums"][di, c].astype(np.float64) for b in rest)
        count = sum(int(b["counts"][di, c]) for b in rest)
        assert r["block_count"] == int(blocks[j]["counts"][di, c])
        assert r["block_positions"] == int(blocks[j]["counts"][di, 0])
        assert r["loo_sv_sum"] == pytest.approx(np.linalg.svd(total / count @ d, compute_uv=False).sum(), rel=1e-12)


def test_intervals_follow_from_the_replicates(run):
    # the documented schema is enough: estimate = sv_sum - bias, se and interval from replicates.csv alone
    _, _, rows, reps = run
    for r in rows:
        assert r["bias_method"] == intervals.BIAS_SIMULATED and 0 <= r["signal_rank"] <= 3
        mine = [x for x in reps if x["class"] == r["class"] and x["delay"] == r["delay"]]
        out = uncertainty.jackknife(r["sv_sum"], [x["loo_sv_sum"] for x in mine], [x["block_positions"] for x in mine],
                                    bias=r["bias"])
        assert r["estimate"] == pytest.approx(r["sv_sum"] - r["bias"], rel=1e-12, abs=1e-15)
        for key in ("estimate", "se", "lo", "hi"):
            assert r[key] == pytest.approx(float(out[key]), rel=1e-12, abs=1e-15), key
        assert r["lo"] <= r["estimate"] <= r["hi"] and r["noise_floor"] > 0


def test_magnitude_and_coherence_ratio_from_every_matrix(run):
    from tests.tiny_corpus import TAGS

    root, d, rows, reps = run
    members = {"overall": None, "nouns": {"NN"}, "verbs": {"VBD"}}
    for r in rows:
        squares, nuclear = [], []
        for t_dir in sorted((root / "dump").glob("timestep_*")):
            folder = t_dir / f"delay_{r['delay']}"
            if not folder.is_dir():
                continue
            for line in open(folder / "mapping.txt", encoding="utf-8"):
                n, word = line.split("\t")[:2]
                if members[r["class"]] is None or TAGS.get(word) in members[r["class"]]:
                    g = np.load(folder / f"{n}.npy").astype(np.float64) @ d
                    squares.append(np.sum(g ** 2))
                    t = int(t_dir.name.split("_")[1])
                    if (t - r["delay"]) % NUCLEAR_STRIDE == 0:    # the sampled source positions
                        nuclear.append(np.linalg.svd(g, compute_uv=False).sum())
        assert len(squares) == r["count"]
        # the engine's float32 G: its Gram matrix and eigenvalues in float32 (a square root of rounding for
        # the smallest singular value, about sqrt(u)·|G·D| = 2.4e-4 relative), the dump's G rounded once
        assert r["occ_nuclear"] == pytest.approx(np.mean(nuclear), rel=5e-4)
        mine = [x for x in reps if x["class"] == r["class"] and x["delay"] == r["delay"]]
        occ = uncertainty.jackknife(r["occ_nuclear"], [x["loo_occ_nuclear"] for x in mine],
                                    [x["block_positions"] for x in mine], exponent=None)
        assert (r["occ_nuclear_lo"], r["occ_nuclear_hi"]) == pytest.approx((occ["lo"], occ["hi"]), rel=1e-12)
        assert r["output_norm"] > 0 and r["output_sq"] >= r["output_norm"] ** 2 * (1 - 1e-9)   # Jensen
        # all terms are positive: the engine's float32 G^T G (H = 5 products), a window's float32 sum of at
        # most 6 occurrences, the dumped G's rounding (2 u) and the packed file (u) stay within 16 u relative
        assert r["magnitude_sq"] == pytest.approx(np.mean(squares), rel=16 * U32)
        mine = [x for x in reps if x["class"] == r["class"] and x["delay"] == r["delay"]]
        ratio = [x["loo_coherence_sq"] / x["loo_magnitude_sq"] for x in mine]
        out = uncertainty.jackknife(r["coherence_sq"] / r["magnitude_sq"], ratio, [x["block_positions"] for x in mine],
                                    exponent=uncertainty.SMOOTH_EXPONENT)
        assert r["coherence_ratio"] == pytest.approx(float(out["value"]), rel=1e-12)
        for key in ("se", "lo", "hi"):
            assert r[f"coherence_ratio_{key}"] == pytest.approx(float(out[key]), rel=1e-12, abs=1e-15), key
        # Jensen: the squared norm of the mean is at most the mean squared norm (the unbiased estimate may
        # dip below 0 by noise, not above 1 by more than noise)
        assert r["coherence_ratio"] <= 1 + 3 * r["coherence_ratio_se"]


def test_refusals(run, tmp_path, capsys):
    root, _, _, _ = run
    assert sg_intervals.main([str(tmp_path), str(root / "D.npy")]) == 2
    assert "holds no block files" in capsys.readouterr().err
    np.save(tmp_path / "D4.npy", np.eye(4))
    assert sg_intervals.main([str(root / "grads"), str(tmp_path / "D4.npy"), "--out", str(tmp_path)]) == 2
    assert "the embedding sizes differ" in capsys.readouterr().err
    assert not (tmp_path / intervals.INTERVALS_CSV).exists()


@pytest.fixture(scope="module")
def typed(tmp_path_factory):
    """A pass whose token classes are the type groups of sg-token-classes --type-weighted (nouns: one bin, 3
    groups of 5 types), with 5 text blocks and D, the same pass dumping every G, and sg-intervals' output."""
    from aux_scripts import token_classes as sg_token_classes
    from tests import tiny_corpus

    root = tiny_corpus.write(tmp_path_factory.mktemp("typed"), valid_lines=30)
    valid = (root / "data" / "valid.txt").read_text().split("\n")[:-1]
    (root / "valid.tags").write_text("".join(" ".join([tiny_corpus.TAGS.get(w, "CC") for w in line.split()]
                                                      + ["<eos>"]) + "\n" for line in valid))
    mapping = {w: {t, "FREQ_1-9" if t == "NN" else "FREQ_10+"} for w, t in tiny_corpus.TAGS.items()}
    formats.write_pos_mapping(mapping, str(root / "freq_mapping.txt"))
    n_tokens = sum(len(line.split()) + 1 for line in valid)
    measured = lm_data.num_batches(n_tokens, 1, 6) * 6
    assert sg_token_classes.main([str(root / "data" / "valid.txt"), str(root / "valid.tags"), str(root / "freq_mapping.txt"),
                                  "--classes", str(root / "nouns.txt"), "--type-weighted", "rarest", "--type-groups",
                                  "3", "--measured-tokens", str(measured), "--out", str(root / "ctx")]) == 0
    values = dict(save_path=str(root / "model"), log_dir=str(root / "logs"), data_path=str(root / "data"),
                  vocab=False, batch_size=1, num_steps=6, size=5, embedding_size=3, basic_cell="GRU",
                  num_layers=1, init_scale=0.5, softmax="full", grad_interm="cell", time_step="all", max_delay=3,
                  grad_dtype="float32", grad_average=True, pos_tokens=str(root / "ctx" / "valid.tags"),
                  pos_token_classes=str(root / "ctx" / "classes"))
    d = np.linalg.cholesky(np.cov(np.random.default_rng(3).normal(size=(50, 3)), rowvar=False))
    np.save(root / "D.npy", d)
    for grad_dir, extra in (("grads", {"grad_dump": False, "grad_blocks": 5, "grad_norm_file": str(root / "D.npy")}),
                            ("dump", {"grad_dump": True})):
        config = config_from_dict({**values, "grad_dir": str(root / grad_dir), **extra}, train=False)
        corpus = lm_data.load_corpus(config, need_train=True, need_valid=True, need_test=False)
        gradient_pass.run_gradient_pass(config, LanguageModel.from_config(config, corpus.vocab_size), corpus,
                                        log=lambda s: None)
    assert sg_intervals.main([str(root / "grads"), str(root / "D.npy"), "--out", str(root / "out")]) == 0
    rows = intervals.read_csv(str(root / "out" / intervals.INTERVALS_CSV), intervals.INTERVAL_COLUMNS)
    reps = intervals.read_csv(str(root / "out" / intervals.REPLICATES_CSV), intervals.REPLICATE_COLUMNS)
    # each noun's group and weight, from the tags file the pass read
    weight = {}
    stream = [w for line in valid for w in line.split() + ["<eos>"]]
    fields = [f for line in (root / "ctx" / "valid.tags").read_text().split("\n")[:-1] for f in line.split()]
    for word, field in zip(stream, fields):
        for tag in field.split("|"):
            if tag.startswith("TYPES:"):
                name, w = formats.split_weight(tag)
                weight.setdefault(word, set()).add((int(name.rsplit("-", 1)[1]), w))
    return root, d, rows, reps, weight, stream[:measured]


def test_type_weighted_family_resamples_the_type_groups(typed):
    root, d, rows, reps, weight, measured = typed
    # every noun type of the measured text is in one group with weight 1 / its count there
    from tests.tiny_corpus import TAGS

    nouns = sorted(w for w, t in TAGS.items() if t == "NN")
    assert sorted(weight) == nouns
    for word, found in weight.items():
        assert len(found) == 1 and list(found)[0][1] == pytest.approx(1 / measured.count(word), rel=1e-15)
    group = {w: list(found)[0][0] for w, found in weight.items()}
    family = [r for r in rows if r["class"] == "freq_1-9+types"]
    assert sorted(r["delay"] for r in family) == [0, 1, 2] and all(r["blocks"] == 3 for r in family)
    for r in family:
        # the weighted sums of every dumped G by type group, independently of the pass's accumulation
        sums, weights, squares = {g: 0.0 for g in (1, 2, 3)}, {g: 0.0 for g in (1, 2, 3)}, {g: 0.0 for g in (1, 2, 3)}
        for t_dir in sorted((root / "dump").glob("timestep_*")):
            folder = t_dir / f"delay_{r['delay']}"
            if not folder.is_dir():
                continue
            for line in open(folder / "mapping.txt", encoding="utf-8"):
                n, word = line.split("\t")[:2]
                if word in group:
                    g, w = group[word], list(weight[word])[0][1]
                    gd = np.load(folder / f"{n}.npy").astype(np.float64)
                    sums[group[word]] = sums[g] + w * gd
                    weights[g] += w
                    squares[g] += w * np.sum((gd @ d) ** 2)
        total, weight_total = sum(sums.values()), sum(weights.values())
        # the float32 block sums (u each, 5 blocks) against float64 here; a sum of 3 singular values moves by at most
        # 3 |change|_F |D|_2
        scale = sum(np.abs(s) for s in sums.values()) / weight_total
        bound = 3 * np.linalg.norm(8 * U32 * scale) * np.linalg.norm(d, 2)
        assert r["count"] == pytest.approx(weight_total, rel=1e-6)   # weights rounded to float32 in the pass
        assert abs(r["sv_sum"] - np.linalg.svd(total / weight_total @ d, compute_uv=False).sum()) <= bound + 1e-6
        assert r["magnitude_sq"] == pytest.approx(sum(squares.values()) / weight_total, rel=32 * U32)
        mine = sorted((x for x in reps if x["class"] == r["class"] and x["delay"] == r["delay"]),
                      key=lambda x: x["block"])
        assert [x["block"] for x in mine] == [1, 2, 3]
        for x in mine:
            g = x["block"]
            assert x["block_positions"] == pytest.approx(weights[g], rel=1e-6)   # the group's sum of weights
            rest = (total - sums[g]) / (weight_total - weights[g])
            assert abs(x["loo_sv_sum"] - np.linalg.svd(rest @ d, compute_uv=False).sum()) <= 2 * bound + 1e-6
        # the interval is the ordinary jackknife over the 3 groups around the simulated bias
        out = uncertainty.jackknife(r["sv_sum"], [x["loo_sv_sum"] for x in mine], [x["block_positions"] for x in mine],
                                    bias=r["bias"])
        for key in ("estimate", "se", "lo", "hi"):
            assert r[key] == pytest.approx(float(out[key]), rel=1e-12, abs=1e-15), key

"""sg-compare: side-by-side tables equal the runs' own result files; parameter counts by hand; windowed perplexities."""
import csv
import math

import numpy as np
import pytest

from aux_scripts.compare_runs import main as compare_main
from state_gradients.core import lm_data
from state_gradients.core.errors import UserError
from state_gradients.files.saved_model import SavedModel
from state_gradients.measures import intervals
from state_gradients.models.lm import LanguageModel
from state_gradients.models.transformer import TransformerLM
from state_gradients.training import run_epoch
from state_gradients.workflows import compare

from tests.commands import REPO

RUNS = [REPO / "docs" / "results" / "ptb-64e-256h", REPO / "docs" / "results" / "ptb-64e-256h-seed2"]


def read(path):
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    paths = compare.compare([str(r) for r in RUNS], ["A", "B"], str(out))
    return out, paths


def test_svs_rows_are_the_runs_intervals_and_their_ratio_to_delay_0(compared):
    out, _ = compared
    rows = read(out / compare.SVS_CSV)
    for label, run in zip("AB", RUNS):
        source = intervals.read_csv(str(run / "intervals" / "intervals.csv"), intervals.INTERVAL_COLUMNS)
        mine = {(r["class"], int(r["delay"])): r for r in rows if r["label"] == label}
        assert len(mine) == len(source)
        base = {r["class"]: r["estimate"] for r in source if r["delay"] == 0}
        for r in source:
            got = mine[(r["class"], r["delay"])]
            for key in ("estimate", "lo", "hi", "noise_floor"):
                assert float(got[key]) == r[key] or (math.isnan(r[key]) and math.isnan(float(got[key])))
            assert float(got["normalised"]) == pytest.approx(r["estimate"] / base[r["class"]], rel=1e-15, nan_ok=True)


def test_fits_equal_the_runs_own_report(compared):
    """The fits come from each run's svs.csv as its report's do: the same parameters as report_fits.csv."""
    out, _ = compared
    rows = read(out / compare.FITS_CSV)
    for label, run in zip("AB", RUNS):
        theirs = {r["model"]: r for r in read(run / "report_fits.csv")}
        for r in (r for r in rows if r["label"] == label):
            for key in ("a", "tau_or_b", "rmse_log"):
                assert float(r[key]) == pytest.approx(float(theirs[r["model"]][key]), rel=1e-12)


def test_rankings_are_sorted_and_frequency_rows_have_their_size_control(compared):
    out, paths = compared
    ranking = read(out / compare.RANKING_CSV)
    for label in "AB":
        for group in ("POS", "frequency"):
            for k in compare.RANK_DELAYS:
                ranked = [float(r["estimate"]) for r in ranking if (r["label"], r["group"], int(r["delay"])) ==
                          (label, group, k)]
                assert ranked == sorted(ranked, reverse=True) and len(ranked) == (9 if group == "POS" else 5)
    frequency = read(out / compare.FREQUENCY_CSV)
    roles = {r["role"] for r in frequency}
    assert roles == {"rare", "frequent", "frequent, size of rare"}
    text = (out / compare.SUMMARY_MD).read_text(encoding="utf-8")
    assert "# A vs B" in text and "frequent, size of rare" in text and "## Models" not in text
    for name in (compare.OVERALL_PNG, compare.POS_PNG):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parameter_counts_by_hand():
    """LSTM V 10, E 3, H 4: embedding 30, kernel 7 x 16, bias 16, output 4 x 10 + 10 -> 208, 128 without embedding
    and output. Transformer V 10, E 3, D 4, F 8, T 5, 1 block: input 12, positions 20, block 2*4 + 4*12 + 12 + 16 + 4
    + 2*4 + 32 + 8 + 32 + 4 = 172, final 8, output 50, embedding 30 -> 292; without embedding, positions, output 192."""
    lstm = LanguageModel(10, 3, 4, 1, "LSTM")
    assert compare.parameter_counts(lstm.weights_numpy()) == (208, 128)
    transformer = TransformerLM(10, 3, 4, 1, 2, 8, 5)
    assert compare.parameter_counts(transformer.weights_numpy()) == (292, 192)


def test_models_give_shapes_counts_and_the_same_windowed_perplexity(tmp_path, capsys):
    """--models and --data: one row per model; the perplexity is run_epoch.window_perplexity's (an LSTM reset per
    window, a Transformer), recomputed here."""
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(12)]
    for split in ("train", "valid", "test"):
        (data / f"{split}.txt").write_text("\n".join(" ".join(rng.choice(words, 9)) for _ in range(8)) + "\n")
    word_to_id = {w: i for i, w in enumerate(["<eos>"] + words)}
    models = {"lstm": LanguageModel(13, 3, 4, 1, "LSTM"), "tr": TransformerLM(13, 3, 4, 1, 2, 8, 6)}
    for name, model in models.items():
        SavedModel(str(tmp_path / name)).write_weights(model, word_to_id)
    out = tmp_path / "out"
    assert compare_main([str(RUNS[0]), str(RUNS[1]), "--labels", "lstm,tr", "--out", str(out), "--models",
                         f"{tmp_path / 'lstm'},{tmp_path / 'tr'}", "--data", str(data), "--num-steps", "6",
                         "--stride", "4"]) == 0
    assert capsys.readouterr().out.strip().endswith("compare.md")
    rows = {r["label"]: r for r in read(out / compare.MODELS_CSV)}
    ids = lm_data.words_to_ids(lm_data.read_words(str(data / "valid.txt")), word_to_id)
    for name, model in models.items():
        assert rows[name]["cell"] == model.cell_type
        saved = SavedModel(str(tmp_path / name)).load()
        assert float(rows[name]["valid_ppl_windows"]) == pytest.approx(
            run_epoch.window_perplexity(saved, ids, 6, 4), rel=1e-12)
    assert "## Models" in (out / compare.SUMMARY_MD).read_text(encoding="utf-8")


def test_runs_over_other_positions_are_refused(tmp_path):
    # the same run with one delay's overall count changed: other windows or target positions
    import shutil
    other = tmp_path / "other"
    shutil.copytree(RUNS[1], other)
    path = other / "intervals" / "intervals.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    for i, line in enumerate(lines[1:], 1):
        cells = line.split(",")
        if cells[header.index("class")] == "overall" and cells[header.index("delay")] == "3":
            cells[header.index("count")] = str(int(cells[header.index("count")]) - 1)
            lines[i] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="counts .* words at delay 3, .*: the runs cover other validation windows"):
        compare.compare([str(RUNS[0]), str(other)], ["A", "B"], str(tmp_path / "out"))


@pytest.mark.parametrize("args,message", [
    (["--out", "o"], "at least two RUN folders"),
    (["--labels", "a,a", "--out", "o"], "distinct names"),
    (["--models", "m", "--out", "o"], "one folder per run"),
])
def test_mistakes_are_one_line(tmp_path, args, message):
    runs = [str(RUNS[0])] if "at least" in message else [str(r) for r in RUNS]
    with pytest.raises(UserError, match=message):
        opts = dict(zip(args[::2], args[1::2]))
        compare.compare(runs, (opts.get("--labels") or "A,B").split(",")[:len(runs)], str(tmp_path / "o"),
                        models=opts["--models"].split(",") if "--models" in opts else None)


def test_panel_rows_are_each_measure_of_the_runs_own_intervals(compared):
    # the magnitude (from magnitude_sq) and the coherence ratio (coherence_sq / magnitude_sq) of the overall class,
    # with the ratio to delay 0 of the same measure; the SV sum's rows are the estimates
    out, _ = compared
    rows = {(r["label"], r["measure"], int(r["delay"])): r for r in read(out / compare.PANEL_CSV)}
    for label, run in zip("AB", RUNS):
        source = {(r["class"], r["delay"]): r for r in intervals.read_csv(str(run / "intervals" / "intervals.csv"),
                                                                          intervals.INTERVAL_COLUMNS)}
        for k in (0, 1, 10, 40):
            r = source[("overall", k)]
            mag = rows[(label, "magnitude", k)]
            assert float(mag["value"]) == pytest.approx(math.sqrt(r["magnitude_sq"]), rel=1e-12)
            assert float(mag["relative_k0"]) == pytest.approx(
                math.sqrt(r["magnitude_sq"] / source[("overall", 0)]["magnitude_sq"]), rel=1e-12)
            assert float(mag["lo"]) < float(mag["value"]) < float(mag["hi"])
            ratio = rows[(label, "coherence_ratio", k)]
            assert float(ratio["value"]) == pytest.approx(r["coherence_sq"] / r["magnitude_sq"], rel=1e-12)
            assert float(rows[(label, "sv_sum", k)]["value"]) == pytest.approx(r["estimate"], rel=1e-12)
    assert "## Overall memory under each measure" in (out / compare.SUMMARY_MD).read_text(encoding="utf-8")


def test_models_csv_keeps_an_earlier_comparisons_model_rows(compared, tmp_path):
    out, _ = compared
    models = tmp_path / "models.csv"
    models.write_text("label,cell,layers,embedding,size,parameters,parameters_core,valid_ppl_windows,"
                      "test_ppl_windows,num_steps,stride\nA,LSTM,1,64,256,10,5,120.5,117.3,200,200\n"
                      "B,LSTM,1,64,256,10,5,121.5,118.3,200,200\n")
    again = tmp_path / "again"
    compare.compare([str(r) for r in RUNS], ["A", "B"], str(again), models_csv=str(models))
    assert read(again / compare.MODELS_CSV)[1]["valid_ppl_windows"] == "121.5"
    assert "| 120.5 / 117.3 | 121.5 / 118.3 |" in compare.headline_table(str(again))
    with pytest.raises(UserError, match="has the runs A, B, not A, C"):
        compare.compare([str(r) for r in RUNS], ["A", "C"], str(tmp_path / "x"), models_csv=str(models))
    # with a run column, the rows must be those of the RUN folders given (one per folder)
    named = tmp_path / "named.csv"
    named.write_text("label,run,cell,layers,embedding,size,parameters,parameters_core,valid_ppl_windows,"
                     "test_ppl_windows,num_steps,stride\nA,ptb-64e-256h,LSTM,1,64,256,10,5,120.5,117.3,200,200\n"
                     "B,elsewhere,LSTM,1,64,256,10,5,121.5,118.3,200,200\n")
    with pytest.raises(UserError, match="one row per RUN folder"):
        compare.compare([str(r) for r in RUNS], ["A", "B"], str(tmp_path / "y"), models_csv=str(named))


def test_behaviour_rows_are_each_runs_overall_perturbation_rows(tmp_path):
    # a run with an sg-perturb folder contributes its overall rows as they are; a run without one contributes none
    import shutil

    run = tmp_path / "A"
    shutil.copytree(RUNS[1], run)
    (run / "perturb").mkdir(exist_ok=True)
    rows = [["replacement_state", "overall", 1, 40, 0.5, 0.01, 0.48, 0.52],
            ["replacement_state", "nouns", 1, 10, 0.7, 0.02, 0.66, 0.74],
            ["truncation_loss", "overall", 20, 40, 0.25, 0.05, 0.15, 0.35]]
    text = "measure,class,delay,count,value,se,lo,hi\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    (run / "perturb" / "perturbation.csv").write_text(text)
    (run / "perturb" / "perturbation_replicates.csv").write_text("measure,class,delay,block,block_count,loo\n")
    paths = compare.compare([str(run), str(RUNS[1])], ["P", "Q"], str(tmp_path / "out"))
    got = read(paths[compare.BEHAVIOUR_CSV])
    assert [(r["label"], r["measure"], int(r["delay"]), float(r["value"]), float(r["lo"])) for r in got] == \
        [("P", "replacement_state", 1, 0.5, 0.48), ("P", "truncation_loss", 20, 0.25, 0.15)]
    summary = open(paths[compare.SUMMARY_MD], encoding="utf-8").read()
    assert "## Behavioural memory (sg-perturb)" in summary and "0.5 [0.48, 0.52]" in summary


SEEDS = [REPO / "docs" / "results" / "ptb-64e-256h-seed2", REPO / "docs" / "results" / "ptb-64e-256h-seed3"]


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    # one model (seed 1) against the seeds 2 and 3 of the same recipe, over the same 367 windows and blocks
    out = tmp_path_factory.mktemp("grouped")
    compare.compare([str(RUNS[0]), [str(s) for s in SEEDS]], ["one", "seeds"], str(out))
    return out


def test_a_side_of_seeds_is_their_average_with_sg_seeds_interval(grouped, tmp_path):
    # the seed side's rows are the seeds' mean, with the interval sg-seeds gives the same two seeds (the seeds as a
    # random effect): two tools, one pooling
    from state_gradients.workflows import seeds

    seeds.summarise([str(s) for s in SEEDS], ["s2", "s3"], str(tmp_path / "seeds"))
    pooled = {(r["class"], int(r["delay"])): r for r in read(tmp_path / "seeds" / seeds.SVS_CSV)}
    own = [{(r["class"], r["delay"]): r for r in intervals.read_csv(str(s / "intervals" / "intervals.csv"),
                                                                     intervals.INTERVAL_COLUMNS)} for s in SEEDS]
    rows = {(r["class"], int(r["delay"])): r for r in read(grouped / compare.SVS_CSV) if r["label"] == "seeds"}
    checked = 0
    for key, r in rows.items():
        if key in pooled and not key[0].startswith("ctx_"):
            assert float(r["estimate"]) == pytest.approx(np.mean([o[key]["estimate"] for o in own]), rel=1e-12)
            for name in ("estimate", "lo", "hi"):
                assert float(r[name]) == pytest.approx(float(pooled[key][name]), rel=1e-12)
            checked += 1
    assert checked > 500


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    # seed 1 against seed 2 and against a copy of itself (the same files under another name), as single models
    import shutil

    root = tmp_path_factory.mktemp("trio")
    shutil.copytree(RUNS[0], root / "copy")
    compare.compare([str(RUNS[0]), str(SEEDS[0]), str(root / "copy")], ["A", "B", "A2"], str(root / "out"))
    return root / "out"


def test_a_contrast_of_two_models_is_the_ratio_of_their_own_ratios(trio):
    # the ratio of their SV sums relative to k = 0 is the ratio of the two runs' own ratios (intervals.csv), and
    # its interval holds it
    est = [{(r["class"], r["delay"]): r["estimate"] for r in intervals.read_csv(
        str(run / "intervals" / "intervals.csv"), intervals.INTERVAL_COLUMNS)} for run in (RUNS[0], SEEDS[0])]
    rows = {(r["measure"], r["base"], int(r["delay"])): r for r in read(trio / compare.CONTRASTS_CSV)
            if r["label"] == "B"}
    for k in (1, 10, 40):
        r = rows[("sv_sum", "k0", k)]
        want = (est[1][("overall", k)] / est[1][("overall", 0)]) / (est[0][("overall", k)] / est[0][("overall", 0)])
        assert float(r["estimate"]) == pytest.approx(want, rel=1e-12)
        assert float(r["lo"]) < want < float(r["hi"]) and r["scale"] == "ratio" and float(r["between_label"]) == 0
    # the absolute SV sums of two models' own states do not compare: only the units that do are compared as they are
    assert not any(m in ("sv_sum", "magnitude", "occ_nuclear") and base == "" for m, base, _ in rows)


def test_a_model_against_its_own_copy_differs_nowhere(trio):
    # every ratio 1 and difference 0 exactly, nothing decided
    rows = [r for r in read(trio / compare.CONTRASTS_CSV) if r["label"] == "A2"]
    assert len(rows) > 100
    for r in rows:
        assert float(r["estimate"]) == pytest.approx(1.0 if r["scale"] == "ratio" else 0.0, abs=1e-12)
        assert r["sign"] == "0"
    assert {r["statement"] for r in read(trio / compare.STATEMENTS_CSV) if r["label"] == "A2"} == {
        "undecided under every measure"}
    summary = (trio / compare.SUMMARY_MD).read_text()
    assert "## Differences between the models, with intervals" in summary
    # the measures whose units compare across models are shown as they are too (the output level, the coherence)
    table = summary.split("A2 / A, each measure as it is")[1][:400]
    assert "| delay | coherence_ratio | output_norm | together |" in table and "| 1 | 0 [0, 0] · | 1 [1, 1] · |" in table
    table = compare.statements_table(str(trio))
    copy_rows = [line for line in table.splitlines() if line.startswith("| A2 / A |")]
    assert len(copy_rows) == 7 and all(line.endswith("| undecided under every measure |") for line in copy_rows)
    assert "| 1 [1, 1] |" in copy_rows[0] and table in (trio / compare.SUMMARY_MD).read_text()


def test_sides_over_other_passes_are_refused(tmp_path):
    # a seed whose blocks hold other occurrences, or a pass record with other targets, is not pooled or compared
    import json
    import shutil

    other = tmp_path / "other"
    shutil.copytree(SEEDS[1], other)
    path = other / "intervals" / "replicates.csv"
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[3] = str(int(cells[3]) + 1)                 # block 1's count of overall at delay 0
    path.write_text("\n".join([lines[0], ",".join(cells)] + lines[2:]) + "\n")
    with pytest.raises(UserError, match="seeds .*other occurrences per block"):
        compare.compare([str(RUNS[0]), [str(SEEDS[0]), str(other)]], ["one", "seeds"], str(tmp_path / "o"))
    records = []
    for name, steps in (("p1", "0-199"), ("p2", "49-199")):
        run = tmp_path / name
        shutil.copytree(RUNS[0], run)
        (run / "gradients").mkdir(exist_ok=True)
        record = {"batches": 367, "time_steps": steps, "delays": list(range(50)), "grad_blocks": 10, "classes": "x"}
        (run / "gradients" / "grad_progress.json").write_text(json.dumps(record))
        records.append(str(run))
    with pytest.raises(UserError, match="differ in time_steps .*--same-targets"):
        compare.compare(records, ["A", "B"], str(tmp_path / "o2"))
    with pytest.raises(UserError, match="given twice"):
        compare.compare([str(RUNS[0]), [str(RUNS[0]), str(SEEDS[0])]], ["A", "B"], str(tmp_path / "o3"))


def _perturb_folder(run, means, counts, seed):
    """An sg-perturb folder for `run` with replacement_loss at delays 1 and 2: 10 blocks of `counts` occurrences
    whose block means scatter around `means` (seeded); its CSV files as sg-perturb writes them."""
    rng = np.random.default_rng(seed)
    rows, reps = [], []
    for k, mean in zip((1, 2), means):
        sums = counts * (mean + 0.05 * rng.standard_normal(len(counts)))
        value = sums.sum() / counts.sum()
        loo = (sums.sum() - sums) / (counts.sum() - counts)
        se = np.sqrt((len(counts) - 1) / len(counts) * np.sum((loo - loo.mean()) ** 2))
        rows.append(f"replacement_loss,overall,{k},{counts.sum()},{value},{se},{value - 2 * se},{value + 2 * se}")
        reps += [f"replacement_loss,overall,{k},{j},{c},{v}" for j, (c, v) in enumerate(zip(counts, loo))]
    (run / "perturb").mkdir(exist_ok=True)
    (run / "perturb" / "perturbation.csv").write_text("measure,class,delay,count,value,se,lo,hi\n" + "\n".join(rows) + "\n")
    (run / "perturb" / "perturbation_replicates.csv").write_text(
        "measure,class,delay,block,block_count,loo\n" + "\n".join(reps) + "\n")
    return [float(r.split(",")[4]) for r in rows]


def test_behaviour_of_seeds_is_pooled_and_compared_in_nats(tmp_path):
    import shutil

    counts = np.full(10, 50.0)
    runs, values = [], []
    for i, (source, means) in enumerate(zip([RUNS[0]] + SEEDS, [(0.4, 0.2), (0.6, 0.3), (0.62, 0.32)])):
        run = tmp_path / f"r{i}"
        shutil.copytree(source, run)
        values.append(_perturb_folder(run, means, counts, i))
        runs.append(str(run))
    paths = compare.compare([runs[0], runs[1:]], ["one", "seeds"], str(tmp_path / "out"))
    got = {(r["label"], int(r["delay"])): float(r["value"]) for r in read(paths[compare.BEHAVIOUR_CSV])}
    for k, i in ((1, 0), (2, 1)):
        assert got[("one", k)] == pytest.approx(values[0][i], rel=1e-12)
        assert got[("seeds", k)] == pytest.approx((values[1][i] + values[2][i]) / 2, rel=1e-12)
    diff = {int(r["delay"]): r for r in read(paths[compare.CONTRASTS_CSV]) if r["measure"] == "replacement_loss"}
    for k, i in ((1, 0), (2, 1)):
        assert diff[k]["scale"] == "difference" and diff[k]["sign"] == "1"     # 0.2 and 0.1 nats, se about 0.01
        assert float(diff[k]["estimate"]) == pytest.approx((values[1][i] + values[2][i]) / 2 - values[0][i], rel=1e-9)
    # a seed whose targets differ (other occurrences per block) is refused
    _perturb_folder(tmp_path / "r2", (0.62, 0.32), counts + np.eye(10)[0], 2)
    with pytest.raises(UserError, match="replacement_loss.*other occurrences per block"):
        compare.compare([runs[0], runs[1:]], ["one", "seeds"], str(tmp_path / "out2"))


def test_a_ranking_separates_adjacent_classes_by_their_difference(compared):
    # above_next and p_holm_next from the delete-m_j jackknife of the difference of two classes' SV sums (Busing,
    # Meijer and van der Leeden 1999), computed here from replicates.csv with numpy; Holm over the adjacent pairs
    import scipy.stats

    out, _ = compared
    ranking = [r for r in read(out / compare.RANKING_CSV) if r["label"] == "A" and r["group"] == "POS"
               and r["delay"] == "1"]
    ranking.sort(key=lambda r: int(r["rank"]))
    rows = {(r["class"], r["delay"]): r for r in intervals.read_csv(str(RUNS[0] / "intervals" / "intervals.csv"),
                                                                    intervals.INTERVAL_COLUMNS)}
    reps = intervals.read_csv(str(RUNS[0] / "intervals" / "replicates.csv"), intervals.REPLICATE_COLUMNS)

    def loo(cls):
        got = sorted((r["block"], r["loo_sv_sum"] - rows[(cls, 1)]["bias"], r["block_positions"]) for r in reps
                     if r["class"] == cls and r["delay"] == 1)
        return np.array([g[1] for g in got]), np.array([g[2] for g in got], float)

    ps = []
    for a, b in zip(ranking, ranking[1:]):
        (la, m), (lb, _) = loo(a["class"]), loo(b["class"])
        full = rows[(a["class"], 1)]["estimate"] - rows[(b["class"], 1)]["estimate"]
        d, n = la - lb, m.sum()
        h = n / m
        pseudo = h * full - (h - 1) * d
        centre = len(d) * full - np.sum((1 - m / n) * d)
        se = np.sqrt(np.sum((pseudo - centre) ** 2 / (h - 1)) / len(d))
        ps.append(2 * scipy.stats.t.sf(abs(full / se), len(d) - 1))
    order = np.argsort(ps)
    holm = np.maximum.accumulate([min(1.0, (len(ps) - i) * ps[j]) for i, j in enumerate(order)])
    want = np.empty(len(ps))
    want[order] = holm
    for r, p in zip(ranking, want):
        assert float(r["p_holm_next"]) == pytest.approx(p, rel=1e-9)
        assert r["above_next"] == str(int(p < 0.05))
    assert ranking[-1]["above_next"] == "" and len(ranking) >= 8
    assert compare.ranking_text(ranking).startswith(ranking[0]["class"] + (" > " if want[0] < 0.05 else " ≈ "))


def test_statements_name_a_lone_measure_and_state_the_rule_across_several():
    rows = [{"reference": "A", "label": "B", "measure": m, "base": "k0", "delay": k, "sign": s}
            for m, k, s in (("sv_sum", 1, 1), ("magnitude", 1, -1), ("sv_sum", 3, 1), ("sv_sum", 5, 1),
                            ("magnitude", 5, 0))]
    said = {r["delay"]: r["statement"] for r in compare.statement_rows(rows)}
    assert said == {1: "depends on the measure", 3: "higher under sv_sum, the only measure at this delay",
                    5: "higher under some measures, undecided under the others"}

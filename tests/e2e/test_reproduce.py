"""sg-reproduce end to end on a tiny corpus: outputs, resuming after a kill, reruns after a change, --dry-run."""
import contextlib
import filecmp
import io
import math
import os
import shutil

import numpy as np
import pytest

from state_gradients.measures import intervals, perturbation

from aux_scripts import reproduce as sg_reproduce
from state_gradients.engine.recurrent import StateGradients
from state_gradients.passes import gradient_pass
from state_gradients.workflows import reproduce
from tf_scripts import main as sg_main

LEXICON = {"DT": ["the", "a"], "NN": [f"dog{i}" for i in range(8)],
           "NNS": [f"cats{i}" for i in range(8)], "VBZ": [f"runs{i}" for i in range(6)],
           "VBP": [f"walk{i}" for i in range(6)], "JJ": [f"big{i}" for i in range(6)],
           "RB": [f"fast{i}" for i in range(5)]}
CONFIG = dict(log_dir="logs", data_path="data", vocab="False", basic_cell="LSTM", num_layers=1, embedding_size=5,
              size=8, num_steps=8, batch_size=4, init_scale=0.3, forget_bias=0, softmax="full", dropout=1,
              learning_rate=1, max_grad_norm=5, optimizer="sgd", max_max_epoch=2, trainer="trainer")
# min-valid-tokens 40: the tiny corpus still gets two frequency bins
OPTIONS = ["--pos-mapping", "pos_mapping.txt", "--classifier-grid", "small", "--min-valid-tokens", "40"]
COMPARED = ["svs.csv", "report.md", "report_fits.csv", "report_ranking.csv", "report_relative_memory.csv",
            "report_findings.csv", "embedding_D_norm_grad.npy", "classes/pos_mapping.txt",
            "diff/NNS-NN_relative_memory.txt", "diff/VBZ-VBP_cos_subspace.txt", "classifier/pos_avg_NNS.npy",
            "classifier/pos.score"]   # report.md holds the perplexities and the classifier's scores


def _sentence(rng):
    pick = lambda tag: LEXICON[tag][rng.integers(len(LEXICON[tag]))]  # noqa: E731
    plural = rng.random() < 0.5
    words = [pick("DT")] + [pick("JJ") for _ in range(rng.integers(0, 3))]
    words += [pick("NNS" if plural else "NN"), pick("VBP" if plural else "VBZ")]
    return " ".join(words + [pick("RB")] * int(rng.random() < 0.5))


def _write_config(path, **changes):
    path.write_text("".join(f"{k} {v}\n" for k, v in dict(CONFIG, **changes).items()))
    return str(path)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A folder with data/, pos_mapping.txt and train.config; the tests run with it as working directory."""
    root = tmp_path_factory.mktemp("reproduce")
    rng = np.random.default_rng(3)
    (root / "data").mkdir()
    for name, n in [("train", 300), ("valid", 60), ("test", 20)]:
        (root / "data" / f"{name}.txt").write_text("\n".join(_sentence(rng) for _ in range(n)) + "\n")
    (root / "pos_mapping.txt").write_text("".join(f"{w} ['{t}']\n" for t, ws in LEXICON.items() for w in ws))
    _write_config(root / "train.config", save_path="model")
    return root


@contextlib.contextmanager
def _cwd(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _run(project, argv):
    out = io.StringIO()
    with _cwd(project), contextlib.redirect_stdout(out):
        status = sg_reproduce.main(argv)
    return status, out.getvalue()


@pytest.fixture(scope="module")
def trained_run(project):
    """The whole pipeline, training included, uninterrupted: the reference outputs."""
    status, log = _run(project, ["--config", "train.config", "--out", "A"] + OPTIONS)
    assert status == 0, log
    return project / "A", log


def _step_lines(log):
    return {line.split("]")[1].split(":")[0].strip(): line for line in log.splitlines() if line.startswith("[")}


def _without_run_details(report_md):
    """report.md without its provenance rows that name the run: its command line (with --out), dates, and the
    epochs, known from a checkpoint but not from a model given as weights.npz (n/a there)."""
    return [line for line in report_md.splitlines()
            if not line.startswith(("| command |", "| date of the run", "| made with", "| report built with",
                                    "| epochs trained |"))]


def _assert_same_outputs(a, b):
    for name in COMPARED:
        if name == "report.md":
            assert _without_run_details((a / name).read_text()) == _without_run_details((b / name).read_text())
        else:
            assert filecmp.cmp(a / name, b / name, shallow=False), name
    for name in sorted(os.listdir(a / "gradients")):
        if name.endswith(".npy"):
            np.testing.assert_array_equal(np.load(a / "gradients" / name), np.load(b / "gradients" / name))


def test_end_to_end_writes_report_and_every_step_output(trained_run, project):
    out, log = trained_run
    steps = _step_lines(log)
    # the embedding and its D come before the pass, whose occurrence measures use D
    assert list(steps) == ["data", "train", "model", "test_perplexity", "pos_mapping", "freq_classes", "embedding",
                           "normalise", "gradients", "perturb", "classifier", "svs", "intervals", "diff", "report"]
    assert all(" s" in line and "skipped" not in line for line in steps.values())
    # the model trained into the config's save_path, and was copied (not moved) into DIR/model
    assert filecmp.cmp(project / "model" / "weights.npz", out / "model" / "weights.npz", shallow=False)
    for k in range(8):   # T = 8 caps the 50 delays
        assert (out / "gradients" / f"delay_{k}_avg.npy").exists()
        assert (out / "gradients" / f"delay_{k}_avg_nouns.npy").exists()
    assert not (out / "gradients" / "delay_8_avg.npy").exists()
    freq = sorted(f for f in os.listdir(out / "classes" / "freq") if f.endswith(".txt"))
    assert len(freq) >= 2
    assert (out / "gradients" / f"delay_1_avg_{freq[0][:-4]}.npy").exists()
    report = (out / "report.md").read_text()
    for heading in ("Provenance", "Findings", "exponential or power law", "Class ranking", "Relative memory",
                    "POS classifier"):
        assert heading in report
    # the behavioural measures beside the gradients, on the pass's windows (T = 8 caps the delays below 8)
    assert "Behavioural memory beside the state gradients" in report and "sg-perturb --config GRAD" not in report
    rows, _ = perturbation.read_outputs(str(out / "perturb"))
    assert {r["delay"] for r in rows if r["measure"] == "replacement_state"} == {0, 1, 2, 3, 5, 7}
    html = (out / "report.html").read_text()
    for figure in ("report_svs_pos.png", "report_svs_freq.png", "report_fits.png", "report_relative_memory.png"):
        assert (out / figure).exists()
        assert f"]({figure})" in report
    figures = [name for name in os.listdir(out) if name.startswith("report_") and name.endswith(".png")]
    assert html.count('src="data:image/png;base64,') == len(figures) >= 4 and 'src="report_' not in html
    # the run's command line and its model in the header
    assert "| command | sg-reproduce --config " in report
    # the pass kept the occurrence measures under the run's D, and the report judged the findings under each
    rows = {(r["class"], r["delay"]): r for r in intervals.read_csv(str(out / "intervals" / "intervals.csv"),
                                                                     intervals.INTERVAL_COLUMNS)}
    assert all(math.isfinite(rows[("overall", k)][c]) for k in (0, 1) for c in ("occ_nuclear", "output_norm"))
    assert "The same findings under each memory measure" in report and (out / "report_panel.csv").exists()


def test_rerun_skips_every_complete_step(trained_run, project):
    status, log = _run(project, ["--config", "train.config", "--out", "A"] + OPTIONS)
    assert status == 0
    steps = _step_lines(log)
    assert "skipped" not in steps["data"]            # the data check always runs
    assert all("skipped" in line for name, line in steps.items() if name != "data")


def _copy_model(project, name):
    """A read-only copy of the trained save_path, as --model input."""
    target = project / name
    if not target.exists():
        shutil.copytree(project / "model", target)
        for path in target.rglob("*"):
            path.chmod(0o555 if path.is_dir() else 0o444)
        target.chmod(0o555)
    return name


def _snapshot(folder):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_killed_during_gradients_resumes_there_with_identical_outputs(trained_run, project, monkeypatch):
    model = _copy_model(project, "frozen_model")
    argv = ["--config", "train.config", "--model", model, "--out", "B"] + OPTIONS
    real = StateGradients.class_moments
    calls = {"n": 0}

    def dying(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StateGradients, "class_moments", dying)
    real_pass = gradient_pass.run_gradient_pass
    monkeypatch.setattr(gradient_pass, "run_gradient_pass",
                        lambda *a, **k: real_pass(*a, **dict(k, checkpoint_seconds=0.0)))
    before = _snapshot(project / model)
    status, log = _run(project, argv)
    assert status == 130                           # interrupted, as Ctrl-C would
    assert list(_step_lines(log))[-1] == "normalise"          # the last step before the pass
    assert not (project / "B" / "gradients" / "delay_0_avg.npy").exists()
    assert (project / "B" / "gradients" / "grad_progress.json").exists()

    monkeypatch.setattr(StateGradients, "class_moments", real)
    status, log = _run(project, argv)
    assert status == 0, log
    steps = _step_lines(log)
    assert all("skipped" in steps[s] for s in ("model", "test_perplexity", "pos_mapping", "freq_classes", "embedding",
                                               "normalise"))
    assert "skipped" not in steps["gradients"]
    gradients_log = (project / "B" / "logs" / "gradients.out").read_text()
    assert "Resuming state gradients" in gradients_log and "at batch 5 " in gradients_log
    _assert_same_outputs(trained_run[0], project / "B")
    assert _snapshot(project / model) == before             # --model is only read (root ignores chmod)


def test_changed_config_value_reruns_only_downstream_steps(trained_run, project):
    # without the perturb step (it depends on the same keys as the gradients: test_the_perturb_step_follows_the_pass)
    model = _copy_model(project, "frozen_model")
    base = ["--model", model, "--out", "C", "--no-perturb"] + OPTIONS
    assert _run(project, ["--config", "train.config"] + base)[0] == 0
    # training-only keys: nothing to redo for a given model
    _write_config(project / "changed_lr.config", save_path="model", learning_rate=0.5, init_scale=0.2)
    status, log = _run(project, ["--config", "changed_lr.config"] + base)
    assert status == 0
    assert all("skipped" in line for name, line in _step_lines(log).items() if name != "data")
    # the window length: the gradients and everything computed from them
    _write_config(project / "changed_t.config", save_path="model", num_steps=6)
    status, log = _run(project, ["--config", "changed_t.config"] + base)
    assert status == 0, log
    ran = {name for name, line in _step_lines(log).items() if "skipped" not in line}
    assert ran == {"data", "gradients", "svs", "intervals", "diff", "report"}
    assert not (project / "C" / "gradients" / "delay_6_avg.npy").exists()   # T = 6: delays 0..5 only
    assert (project / "C" / "gradients" / "delay_5_avg.npy").exists()
    # --same-targets: every delay over the targets t >= 5 (T = 6: delays 0..5), one occurrence a window each
    status, log = _run(project, ["--config", "changed_t.config", "--same-targets"] + base)
    assert status == 0, log
    ran = {name for name, line in _step_lines(log).items() if "skipped" not in line}
    assert ran == {"data", "gradients", "svs", "intervals", "diff", "report"}
    counts = {k: int((project / "C" / "gradients" / f"delay_{k}_count.txt").read_text()) for k in range(6)}
    assert len(set(counts.values())) == 1, counts


def test_dry_run_commands_reproduce_the_outputs(trained_run, project):
    model = _copy_model(project, "frozen_model")
    status, text = _run(project, ["--config", "train.config", "--model", model, "--out", "D", "--dry-run"] + OPTIONS)
    assert status == 0
    assert not (project / "D" / "gradients").exists()        # nothing computed, only the configs written
    assert sorted(os.listdir(project / "D")) == ["configs"]
    commands = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert commands[0].startswith("test -f ") and any(c.startswith("sg-main --notrain --notest") for c in commands)
    with _cwd(project), contextlib.redirect_stdout(io.StringIO()):
        for line in commands:                                  # one by one, as a user pastes them
            reproduce.run_command(reproduce.Command.parse(line))
    _assert_same_outputs(trained_run[0], project / "D")


def test_errors_name_the_options(project, capsys):
    assert _run(project, ["--config", "train.config", "--out", "E"])[0] == 2
    assert "--pos-data" in capsys.readouterr().err
    assert _run(project, ["--config", "train.config", "--out", "E", "--pos-mapping", "missing.txt"])[0] == 2
    assert "missing.txt not found" in capsys.readouterr().err
    assert _run(project, ["--config", "train.config", "--out", "E", "--model", "nowhere",
                          "--pos-mapping", "pos_mapping.txt"])[0] == 2
    assert "--model nowhere" in capsys.readouterr().err
    assert _run(project, ["--config", "train.config", "--out", "E", "--pos-mapping", "pos_mapping.txt",
                          "--conll", "pos_mapping.txt"])[0] == 2
    assert "not both" in capsys.readouterr().err
    # a missing config is named first, before the missing POS data
    assert _run(project, ["--config", "nope.config", "--out", "E"])[0] == 2
    err = capsys.readouterr().err
    assert "config file nope.config does not exist" in err and "--pos-data" not in err
    assert _run(project, ["--help"])[0] == 0


def test_tagged_corpora_become_a_build_pos_mapping_command(project):
    status, text = _run(project, ["--config", "train.config", "--out", "F", "--dry-run", "--conll", "pos_mapping.txt",
                                  "--treebank", "pos_mapping.txt"])
    assert status == 0
    line = next(c for c in text.splitlines() if c.startswith("sg-build-pos-mapping"))
    assert "--conll pos_mapping.txt --treebank pos_mapping.txt --coverage data/valid.txt" in line


def test_model_with_only_a_checkpoint_is_exported_into_the_output(trained_run, project):
    ckpt_only = project / "ckpt_only"
    if not ckpt_only.exists():
        shutil.copytree(project / "model", ckpt_only, ignore=shutil.ignore_patterns("weights.npz", "dict"))
    status, text = _run(project, ["--config", "train.config", "--model", "ckpt_only", "--out", "G", "--dry-run"]
                        + OPTIONS)
    assert status == 0
    assert "sg-main --notrain --export_weights --config G/configs/model.config" in text
    with _cwd(project), contextlib.redirect_stdout(io.StringIO()):
        steps, _ = reproduce.plan(reproduce.Options(config="train.config", out="G", model="ckpt_only",
                                                    pos_mapping="pos_mapping.txt"))
        reproduce.run_plan(steps[:2], "G", log=lambda m: None)
    with np.load(project / "G" / "model" / "weights.npz") as got, np.load(project / "model" / "weights.npz") as want:
        for name in want.files:
            np.testing.assert_array_equal(got[name], want[name])
    assert not (project / "ckpt_only" / "weights.npz").exists()


def test_the_perturb_step_follows_the_pass(project):
    # sg-perturb reads the gradient pass's config and depends on every key and file the pass does (a change of
    # num_steps, --valid-windows, --blocks or --same-targets reruns both); --no-perturb drops it and its report input
    with _cwd(project):
        steps, _ = reproduce.plan(reproduce.Options(config="train.config", out="P", pos_mapping="pos_mapping.txt"))
        without, _ = reproduce.plan(reproduce.Options(config="train.config", out="P", pos_mapping="pos_mapping.txt",
                                                      perturb=False))
    by = {step.name: step for step in steps}
    perturb, gradients = by["perturb"], by["gradients"]
    assert perturb.commands[0].argv[:3] == ["sg-perturb", "--config", gradients.commands[0].argv[-1]]
    assert {k: v for k, v in gradients.keys.items() if k != "max_delay"} == perturb.keys
    assert set(gradients.inputs) == set(perturb.inputs)
    # T = 8: delays below 8, contexts up to the 200 words the validation text's windows hold
    argv = perturb.commands[0].argv
    assert argv[argv.index("--delays") + 1] == "0,1,2,3,5,7"
    assert argv[argv.index("--contexts") + 1] == "1,2,3,5,10,20,50,100,200"
    assert "perturb" not in {step.name for step in without}
    # --same-targets: contexts up to max_delay (50), so that the cut contexts fall on the pass's targets t >= 49
    # for either family
    with _cwd(project):
        same, _ = reproduce.plan(reproduce.Options(config="train.config", out="P", pos_mapping="pos_mapping.txt",
                                                   same_targets=True))
    argv = {step.name: step for step in same}["perturb"].commands[0].argv
    assert argv[argv.index("--contexts") + 1] == "1,2,3,5,10,20,50"
    assert set(by["report"].inputs) - set({s.name: s for s in without}["report"].inputs) == {
        os.path.join("P", "perturb", "perturbation.csv")}


def test_every_command_of_the_plan_is_a_console_script(project):
    # core/commands.py's table is the one list of commands: setup.py installs it, every step uses it
    from state_gradients.core import commands

    table = commands.COMMANDS
    setup = open(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "setup.py"), encoding="utf-8").read()
    assert len(table) >= 25 and 'runpy.run_path("state_gradients/core/commands.py")["COMMANDS"]' in setup
    with _cwd(project):
        steps, _ = reproduce.plan(reproduce.Options(config="train.config", out="P", pos_mapping="pos_mapping.txt",
                                                    pos_data="pos"))
    used = {c.argv[0] for step in steps for c in step.commands} - set(reproduce.SHELL)
    assert used and used <= set(table)


def test_the_report_numbers_are_the_printed_ones(trained_run):
    # the report reads the JSON results only; the printed logs (the original's formats) say the same numbers
    import csv
    import re

    out, _ = trained_run
    printed = (out / "test_perplexity.txt").read_text()
    ppl = float(re.search(r"Test Perplexity: (\S+)", printed).group(1))
    assert f"| test perplexity (batch 1, one token at a time) | {ppl:.2f} |" in (out / "report.md").read_text()
    with open(out / "report_relative_memory.csv") as handle:
        rows = list(csv.DictReader(handle))
    for name in ("NNS-NN", "VBZ-VBP"):
        text = (out / "diff" / f"{name}_relative_memory.txt").read_text()
        want = {int(k): float(v) for k, v in re.findall(r"delay: (\d+)\trelative memory: (\S+)", text)}
        got = {int(r["delay"]): float(r["relative_memory"]) for r in rows if r["difference"] == name}
        assert got == want and want
    log = (out / "classifier" / "pos.log").read_text()
    score = re.search(r"^Test score: (\S+)", log, re.M).group(1)
    assert f"| test accuracy | {float(score):.4g} |" in (out / "report.md").read_text()


def test_main_restores_weights_npz_without_checkpoint(trained_run, project, capsys):
    folder = project / "npz_only"
    folder.mkdir(exist_ok=True)
    for name in ("weights.npz", "dict"):
        shutil.copy(project / "model" / name, folder / name)
    _write_config(project / "npz.config", save_path="npz_only")
    with _cwd(project):
        assert sg_main.main(["--notrain", "--notest", "--config", "npz.config"]) == 0
        out = capsys.readouterr().out
        assert "Restored npz_only/weights.npz" in out
        with_ckpt = sg_main.main(["--notrain", "--notest", "--config", str(project / "train.config")])
    assert with_ckpt == 0
    ppl = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Valid Perplexity")]
    assert ppl and ppl[0] in out                               # same weights, same perplexity
    _write_config(project / "npz_gru.config", save_path="npz_only", basic_cell="GRU")
    with _cwd(project):
        assert sg_main.main(["--notrain", "--notest", "--config", "npz_gru.config"]) == 2
    assert "basic_cell LSTM" in capsys.readouterr().err


def _write_pos_data(root, rng):
    """root/pos/ in get_pos_data.py's layout, of tagged sentences of the tiny lexicon."""
    tag_of = {w: t for t, ws in LEXICON.items() for w in ws}

    def sentences(n):
        return [[(w, tag_of[w]) for w in _sentence(rng).split()] + [(".", ".")] for _ in range(n)]
    pos = root / "pos"
    (pos / "conll2000").mkdir(parents=True)
    (pos / "treebank_sample").mkdir()
    for name, n in (("train", 150), ("test", 40)):
        (pos / "conll2000" / f"{name}.txt").write_text(
            "".join("".join(f"{w} {t} O\n" for w, t in s) + "\n" for s in sentences(n)))
    (pos / "treebank_sample" / "wsj_0001-0199.pos").write_text(
        "".join(" ".join(f"{w}/{t}" for w, t in s) + "\n\n" for s in sentences(60)))
    return "pos"


def test_classes_in_context_with_pos_data(trained_run, project):
    model = _copy_model(project, "frozen_model")
    pos = _write_pos_data(project, np.random.default_rng(8)) if not (project / "pos").exists() else "pos"
    status, log = _run(project, ["--config", "train.config", "--model", model, "--out", "H", "--pos-data", pos,
                                 "--classifier-grid", "small", "--min-valid-tokens", "40"])
    assert status == 0, log
    out = project / "H"
    for name in ("tagger", "token_classes", "svs_in_context", "intervals"):
        assert name in _step_lines(log)
    assert "gradients_in_context" not in _step_lines(log)    # one pass holds both families of classes
    tagger = __import__("json").loads((out / "tagger" / "tagger.json").read_text())
    assert tagger["accuracy"] > 0.9      # the tiny lexicon gives every word one tag
    classes = sorted(p.name for p in (out / "in_context" / "classes").iterdir())
    assert "ctx_nouns+unk.txt" in classes and any(c.startswith("ctx_verbs-freq_") for c in classes)
    report = (out / "report.md").read_text()
    assert "## Word classes in context" in report and "tags in context" in report
    # the papers' figure keeps the type-level classes; the classes in context get their own
    type_level = {line.split(",")[1] for line in (out / "svs.csv").read_text().splitlines()[1:]}
    in_context = {line.split(",")[1] for line in (out / "svs_in_context.csv").read_text().splitlines()[1:]}
    assert "nouns" in type_level and not any(c.startswith("ctx_") for c in type_level)
    assert "ctx_nouns" in in_context and in_context - {"overall"} <= {c[:-4] for c in classes}   # empty ones have no average
    blocks = __import__("json").loads((out / "gradients" / "grad_progress.json").read_text())["grad_blocks"]
    assert blocks == reproduce.BLOCKS_WITH_CONTEXT
    # the extreme bins with their types weighted equally: groups of types, combined by sg-intervals, judged in the
    # report; and the POS x frequency cells with the within-POS finding
    groups = sorted(c for c in classes if "+types-" in c)
    assert groups and len({c.split("+types-")[0] for c in groups}) == 2
    rows = intervals.read_csv(str(out / "intervals" / intervals.INTERVALS_CSV), intervals.INTERVAL_COLUMNS)
    typed = {r["class"]: r for r in rows if r["class"].endswith("+types") and r["delay"] == 1}
    assert len(typed) == 2 and all(r["blocks"] == len(groups) // 2 for r in typed.values())
    # a type's weights sum to 1 over the measured text, so a bin's count (the sum of weights at k = 1) is at most
    # its number of types, and close to it (a type misses only its occurrences without a target at k = 1)
    fields = [f for f in next((out / "in_context").glob("*.tags")).read_text().split() if "|TYPES:" in f]
    for name, r in typed.items():
        n_types = round(sum(float(f.rsplit("*", 1)[1]) for f in fields if f"TYPES:{name[4:]}-" in f))
        assert 0.5 * n_types < r["count"] <= n_types + 1e-9, (name, r["count"], n_types)
    assert "every word type weighted equally" in report and "POS x frequency" in report


def test_a_transformer_goes_through_the_whole_workflow(project):
    """sg-reproduce with basic_cell Transformer: trained, its residual stream differentiated, every step and the
    report written; the report names the model, the state and the test pass's windows."""
    _write_config(project / "transformer.config", save_path="transformer_model", basic_cell="Transformer",
                  num_heads=2, forget_bias=None, optimizer="adam", learning_rate=0.01)
    text = (project / "transformer.config").read_text().replace("forget_bias None\n", "")
    (project / "transformer.config").write_text(text)
    status, log = _run(project, ["--config", "transformer.config", "--out", "T"] + OPTIONS)
    assert status == 0, log
    report = (project / "T" / "report.md").read_text(encoding="utf-8")
    assert "Transformer, 1 block, embedding E 5, d_model 8, 2 heads" in report and "residual state" in report
    assert "test perplexity (windows that carry no state)" in report
    assert "Not available for a Transformer: σ and TX-Ray" in report
    assert (project / "T" / "gradients" / "delay_0_avg.npy").is_file()
    assert "grad_interm\tresidual" in (project / "T" / "configs" / "gradients.config").read_text()


@pytest.mark.parametrize("cell", ["minGRU", "DiagLinear"])
def test_a_family_added_through_the_registry_goes_through_the_whole_workflow(project, cell):
    """The families added by one module and one registry line (core/families.py): trained, differentiated with every
    measure, judged and reported by sg-reproduce as the TF1 cells are."""
    _write_config(project / f"{cell}.config", save_path=f"{cell}_model", basic_cell=cell)
    status, log = _run(project, ["--config", f"{cell}.config", "--out", cell, "--no-perturb"] + OPTIONS)
    assert status == 0, log
    out = project / cell
    report = (out / "report.md").read_text(encoding="utf-8")
    assert f"{cell}, 1 layer" in report and "under each memory measure" in report
    rows = intervals.read_csv(str(out / "intervals" / intervals.INTERVALS_CSV), intervals.INTERVAL_COLUMNS)
    overall = [r for r in rows if r["class"] == "overall"]
    assert overall and all(math.isfinite(r["output_norm"]) and r["output_norm"] > 0 for r in overall)

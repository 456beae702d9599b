"""sg-perturb on the demo's trained model: its files, its resume, and the planted dependency found where it is cut."""
import csv
import importlib.util
import io
import contextlib
from pathlib import Path

import numpy as np

from aux_scripts import perturb
from state_gradients.core import configuration, lm_data
from state_gradients.files.saved_model import SavedModel
from state_gradients.measures import perturbation

REPO = Path(__file__).resolve().parents[2]


def _derived_config(out, **changes):
    config = configuration.load_config(str(out / "configs" / "demo_grad.config"), train=False, valid=True, test=False)
    path = out / "configs" / "perturb.config"
    configuration.derive(config, path=str(path), batch_size=1, **changes).save(str(path))
    return path


def _rows(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_command_writes_intervals_per_class_and_resumes(demo_run, tmp_path):
    out = demo_run[0]
    config = _derived_config(out, valid_batches=12, grad_blocks=4, grad_norm_file=str(out / "embedding_D_norm_grad.npy"))
    argv = ["--config", str(config), "--out", str(tmp_path / "p"), "--delays", "0,2,6", "--contexts", "1,4,12",
            "--function", "determiners", "--targets-per-window", "4"]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert perturb.main(argv) == 0
    assert "12 windows in 4 blocks" in printed.getvalue()
    rows = _rows(tmp_path / "p" / "perturbation.csv")
    assert list(rows[0]) == perturbation.CSV_COLUMNS
    overall = {(r["measure"], int(r["delay"])): r for r in rows if r["class"] == "overall"}
    # every measure at every delay; 4 sampled targets in each of the 12 windows (demo windows have 25 positions)
    # the rearranged and thinned contexts at every d below the longest (12), against the longest
    assert set(overall) == {(m, k) for m in perturbation.REPLACED for k in (0, 2, 6)} | \
        {("truncation_loss", d) for d in (1, 4, 12)} | \
        {(m, d) for m in perturbation.TRUNCATION[1:] for d in (1, 4)}
    assert all(float(r["count"]) == 48 for key, r in overall.items()
               if key[0] != "truncation_loss" and not key[0].startswith("same_class"))
    # a same-class draw needs a replaced word in a content or function class (demo: nouns, verbs, ..., determiners)
    assert all(0 < float(overall["same_class_state", k]["count"]) < 48 for k in (0, 2, 6))
    for r in rows:
        value, lo, hi = float(r["value"]), float(r["lo"]), float(r["hi"])
        assert np.isfinite(value) and lo <= value <= hi, r
    # a replaced word moves the state less the further back it is (the demo forgets its fillers)
    state = [float(overall["replacement_state", k]["value"]) for k in (0, 2, 6)]
    assert state[0] > state[1] > state[2] > 0
    # a second run finds the complete progress file and writes the same numbers
    before = (tmp_path / "p" / "perturbation.csv").read_bytes()
    with contextlib.redirect_stdout(io.StringIO()):
        assert perturb.main(argv) == 0
    assert (tmp_path / "p" / "perturbation.csv").read_bytes() == before
    # other options with the same folder: refused, naming the progress file
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        assert perturb.main(argv[:-1] + ["3"]) == 2
    assert "perturbation_progress.npz" in err.getvalue()


def test_classes_in_context_with_the_word_types_tags_give_the_type_classes(demo_run, tmp_path):
    # every validation token tagged with its word's tags (pos_tokens), the class files again as pos_token_classes:
    # each in-context class selects the same occurrences as its word-type class, so every measure's rows agree
    # exactly (one run, the same draws)
    from state_gradients.core import formats

    out = demo_run[0]
    mapping = formats.read_pos_mapping(str(REPO / "data" / "demo" / "pos_mapping.txt"))
    lines = (REPO / "data" / "demo" / "valid.txt").read_text(encoding="utf-8").split("\n")[:-1]
    (tmp_path / "valid.tags").write_text("".join(
        " ".join(["|".join(sorted(mapping.get(w) or {"X"})) for w in line.split()] + ["<eos>"]) + "\n"
        for line in lines), encoding="utf-8")
    for name in ("nouns", "determiners"):
        (tmp_path / f"ctx_{name}.txt").write_bytes((REPO / "data" / "demo" / "classes" / f"{name}.txt").read_bytes())
    config = _derived_config(out, valid_batches=4, grad_blocks=2, pos_tokens=str(tmp_path / "valid.tags"),
                             pos_token_classes=f"{tmp_path / 'ctx_nouns.txt'},{tmp_path / 'ctx_determiners.txt'}")
    with contextlib.redirect_stdout(io.StringIO()):
        assert perturb.main(["--config", str(config), "--out", str(tmp_path / "p"), "--delays", "0,3",
                             "--contexts", "1,6", "--function", "determiners", "--targets-per-window", "6"]) == 0
    rows = _rows(tmp_path / "p" / "perturbation.csv")
    by = {(r["measure"], r["class"], r["delay"]): r for r in rows}
    for name in ("nouns", "determiners"):
        pairs = [(r, by[(r["measure"], f"ctx_{name}", r["delay"])]) for r in rows if r["class"] == name]
        assert len(pairs) >= 10
        assert all({**a, "class": ""} == {**b, "class": ""} for a, b in pairs)


def _demo_words():
    spec = importlib.util.spec_from_file_location("make_demo", REPO / "data" / "make_demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    nouns = {w for pair in demo.NOUNS for w in pair}
    verbs = {w for pair in demo.VERBS_INTRANSITIVE + demo.VERBS_TRANSITIVE for w in pair}
    return nouns, verbs, set(demo.ADJECTIVES + demo.ADVERBS + demo.INTERJECTIONS)


def _increase(model, ids, full, targets, offset):
    """[R] loss increase at each (p, dist) when the context is the last dist + offset words."""
    out = np.empty(len(targets))
    for d in sorted({dist + offset for _, dist in targets}):
        rows = [i for i, (_, dist) in enumerate(targets) if dist + offset == d]
        contexts = np.stack([ids[targets[i][0] - d + 1:targets[i][0] + 1] for i in rows])
        out[rows] = perturbation.context_losses(model, contexts, ids[[targets[i][0] + 1 for i in rows]]) \
            - full[[targets[i][0] for i in rows]]
    return out


def test_truncation_finds_the_planted_dependency_where_it_is_cut(demo_run):
    # the demo's verb agrees in number with the subject noun 1-8 words back: a verb's loss rises when the context
    # stops just after the noun (d = dist - 1) and falls once the noun is in it (d = dist); a filler after the
    # same noun depends on nothing, so including the noun changes its loss little. Means over the first 3,000
    # validation tokens (about 340 verbs, 1,200 fillers); the margins are several standard errors wide.
    import tensorflow as tf

    out = demo_run[0]
    config = configuration.load_config(str(out / "configs" / "demo_grad.config"), train=False, valid=True, test=False)
    source = SavedModel.from_config(config)
    model = source.load(tf.float64)
    ids = source.ids(lm_data.load_corpus(config, need_train=False, need_valid=True, need_test=False), "valid")[:3000]
    words = [source.id_to_word[i] for i in ids]
    full, _ = perturbation.stream_losses(model, ids)
    nouns, verbs, fillers = _demo_words()
    found = {"verb": [], "filler": []}
    for p in range(20, len(ids) - 1):
        kind = "verb" if words[p + 1] in verbs else "filler" if words[p + 1] in fillers else None
        q = p
        while kind and words[q] not in nouns and words[q] not in verbs:
            q -= 1
        if kind and words[q] in nouns and p + 1 - q >= 2:
            found[kind].append((p, p + 1 - q))
    drop = {kind: _increase(model, ids, full, rows, -1) - _increase(model, ids, full, rows, 0)
            for kind, rows in found.items()}
    verb, filler = drop["verb"], drop["filler"]
    assert len(verb) > 200 and len(filler) > 500
    se = verb.std(ddof=1) / np.sqrt(len(verb))
    assert verb.mean() > 0.3 and verb.mean() - 3 * se > 0, (verb.mean(), se)
    assert verb.mean() > filler.mean() + 0.3, (verb.mean(), filler.mean())

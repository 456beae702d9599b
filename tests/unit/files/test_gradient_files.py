"""Sharded gradient passes: the batch split, shards merged into exactly what one pass writes, reruns, refusals."""
import json
import shutil

import pytest

from aux_scripts import merge_gradients
from state_gradients.core import lm_data
from state_gradients.core.errors import UserError
from state_gradients.files import gradient_files
from state_gradients.files.saved_model import SavedModel
from state_gradients.models.lm import LanguageModel
from state_gradients.passes import gradient_pass
from tests import tiny_corpus
from tests.pass_files import assert_same_pass, pass_files
from tf_scripts import main as main_script


def test_shard_ranges_by_hand():
    assert [gradient_files.shard_range(10, i, 3) for i in (1, 2, 3)] == [(0, 4), (4, 7), (7, 10)]
    assert [gradient_files.shard_range(4, i, 4) for i in range(1, 5)] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert gradient_files.shard_range(7, 1, 1) == (0, 7)
    with pytest.raises(UserError, match="5 shards for a pass of 4 batches"):
        gradient_files.shard_range(4, 1, 5)
    assert gradient_files.parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "2", "a/b", "1/0"):
        with pytest.raises(UserError, match="--shard must be i/N"):
            gradient_files.parse_shard(bad)


@pytest.fixture
def make(tiny_tagged_corpus):
    root = tiny_tagged_corpus(valid_lines=14)
    return (lambda grad_dir, batch_size=1, **keys: tiny_corpus.pass_setup(
        root, grad_dir, batch_size, **{"num_layers": 2, "time_step": "3-5", "forget_bias": 0.2, **keys})), root


@pytest.mark.parametrize("batch_size", [1, 3])
def test_shards_merged_equal_one_pass(make, batch_size):
    build, root = make
    config, corpus, model = build("one", batch_size)
    ppl = gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    one = pass_files(root / "one")
    assert any("mapping.txt" in rel for rel in one) and any("avg_nouns" in rel for rel in one)
    n_batches = json.load(open(root / "one" / gradient_files.PROGRESS_FILE))["batches"]
    for count in (1, 2, 3):
        config, corpus, model = build(f"split{count}", batch_size)
        logged = []
        for i in range(1, count + 1):
            assert gradient_pass.run_gradient_pass(config, model, corpus, log=logged.append, shard=(i, count)) is None
        assert any("Forward pass over the" in line for line in logged) == (count > 1)
        merged_ppl = gradient_files.merge_shards(str(root / f"split{count}"), log=logged.append)
        assert merged_ppl == pytest.approx(ppl, rel=1e-12)
        assert_same_pass(one, pass_files(root / f"split{count}"))
        record = json.load(open(root / f"split{count}" / gradient_files.PROGRESS_FILE))
        assert record["complete"] and record["merged_shards"] == count and record["batches"] == n_batches
        # the merged folder is a complete pass for main.py too: nothing to compute
        rerun = []
        gradient_pass.run_gradient_pass(config, model, corpus, log=rerun.append)
        assert any("nothing to compute" in line for line in rerun)


def test_killed_shard_is_rerun_alone_and_merges(make, monkeypatch):
    build, root = make
    config, corpus, model = build("one")
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    config, corpus, model = build("split")
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None, shard=(1, 2))
    real_write, calls = gradient_pass.GradientDump.write, []

    def dying_write(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt     # the worker dies after two of its batches
        return real_write(self, *args)

    monkeypatch.setattr(gradient_pass.GradientDump, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None, checkpoint_seconds=0, shard=(2, 2))
    monkeypatch.setattr(gradient_pass.GradientDump, "write", real_write)
    with pytest.raises(UserError, match=r"shard 2/2 is incomplete \(2 of \d+ batches"):
        gradient_files.merge_shards(str(root / "split"))
    logged = []
    gradient_pass.run_gradient_pass(config, model, corpus, log=logged.append, shard=(2, 2))
    assert any("Resuming Shard 2/2" in line for line in logged)
    gradient_files.merge_shards(str(root / "split"), log=lambda s: None)
    assert_same_pass(pass_files(root / "one"), pass_files(root / "split"))


def test_merge_refusals_and_merging_again(make, capsys):
    build, root = make
    config, corpus, model = build("split")
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None, shard=(1, 3))
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None, shard=(3, 3))
    assert merge_gradients.main([str(root / "split")]) == 2
    assert "shard(s) 2/3 missing" in capsys.readouterr().err
    # shard 2 computed with another setting (max_delay) has another fingerprint
    other, corpus2, model2 = build("split", max_delay=2)
    gradient_pass.run_gradient_pass(other, model2, corpus2, log=lambda s: None, shard=(2, 3))
    assert merge_gradients.main([str(root / "split")]) == 2
    assert "shard 2/3 comes from a different model, data or setting" in capsys.readouterr().err
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None, shard=(1, 2))
    assert merge_gradients.main([str(root / "split")]) == 2
    assert "shards of 2, 3 shards" in capsys.readouterr().err
    assert merge_gradients.main([str(root / "nothing")]) == 2
    assert f"GRAD_DIR {root / 'nothing'} does not exist" in capsys.readouterr().err
    (root / "empty").mkdir()
    assert merge_gradients.main([str(root / "empty")]) == 2
    assert "holds no shard folders" in capsys.readouterr().err
    # a good merge, then again: nothing changes
    config, corpus, model = build("good")
    for i in (1, 2):
        gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None, shard=(i, 2))
    assert merge_gradients.main([str(root / "good")]) == 0
    assert "Valid Perplexity" in capsys.readouterr().out
    before = pass_files(root / "good")
    assert merge_gradients.main([str(root / "good")]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert_same_pass(before, pass_files(root / "good"))


def test_main_shard_flag(make, capsys):
    build, root = make
    config, _, _ = build("cli")
    path = root / "grad.config"
    path.write_text("".join(f"{k} {v}\n" for k, v in config.items()), encoding="utf-8")
    corpus = lm_data.load_corpus(config, need_valid=False, need_test=False)
    SavedModel(root / "model").write_weights(LanguageModel.from_config(config, corpus.vocab_size), corpus.word_to_id)
    assert main_script.main(["--config", str(path), "--notrain", "--shard", "1/2"]) == 2
    assert "use it with --notrain --notest" in capsys.readouterr().err
    assert main_script.main(["--config", str(path), "--notrain", "--notest", "--shard", "3/2"]) == 2
    assert "--shard must be i/N" in capsys.readouterr().err
    assert main_script.main(["--config", str(path), "--notrain", "--notest", "--shard", "1/2", "--states-only"]) == 2
    assert "run it once, without --shard" in capsys.readouterr().err
    assert main_script.main(["--config", str(path), "--notrain", "--notest", "--states-only"]) == 0
    assert (root / "cli" / "shards" / "states.npz").exists()
    for i in (1, 2):
        assert main_script.main(["--config", str(path), "--notrain", "--notest", "--shard", f"{i}/2"]) == 0
    assert "merge all 2 shards with sg-merge-gradients" in capsys.readouterr().out
    assert merge_gradients.main([str(root / "cli")]) == 0


def test_states_file_replaces_the_forward_pre_pass(make):
    build, root = make
    config, corpus, model = build("one", 3)
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    config, corpus, model = build("split", 3)
    logged = []
    path = gradient_pass.write_entering_states(config, model, corpus, logged.append)
    assert path.endswith("shards/states.npz")
    for i in (1, 2, 3):
        gradient_pass.run_gradient_pass(config, model, corpus, log=logged.append, shard=(i, 3))
    assert sum("from " + path in line for line in logged) == 2 and not any("Forward pass over" in line for line in logged)
    gradient_files.merge_shards(str(root / "split"), log=lambda s: None)
    assert_same_pass(pass_files(root / "one"), pass_files(root / "split"))
    # states of another setting are refused
    other, corpus2, model2 = build("other", 3, max_delay=2)
    (root / "other" / "shards").mkdir(parents=True)
    shutil.copy(path, root / "other" / "shards" / "states.npz")
    with pytest.raises(UserError, match="states.npz holds the states of a different model"):
        gradient_pass.run_gradient_pass(other, model2, corpus2, log=lambda s: None, shard=(2, 3))

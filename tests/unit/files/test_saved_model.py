"""The one home of a saved model: no other module spells its files; checkpoints and weights round-trip."""
import ast
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from state_gradients.core.errors import UserError
from state_gradients.files import saved_model
from state_gradients.files.saved_model import Checkpointer, SavedModel
from state_gradients.models.lm import LanguageModel

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("tf_scripts", "aux_scripts", "state_gradients")
SOURCES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if p.name != "saved_model.py")
# the names only a saved model's folder uses ("dict" also names a pretrained_embeddings file and
# argparse positionals, so it is checked only where a path is joined)
NAMES = {saved_model.WEIGHTS, saved_model.LABELS, saved_model.RESOLVED_CONFIG, saved_model.CHECKPOINT_INDEX,
         saved_model.IMPORT_CONFIG, saved_model.IMPORT_REPORT}


def spelled_names(source):
    """(line, name) of every string constant that is a saved model's file name, or "dict" joined into a path."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and node.value in NAMES:
            found.append((node.lineno, node.value))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join"
                and any(isinstance(a, ast.Constant) and a.value == saved_model.VOCAB for a in node.args)):
            found.append((node.lineno, saved_model.VOCAB))
    return found


def test_the_check_sees_constants_and_joined_dicts():
    source = 'import os\np = "weights.npz"\nq = os.path.join(d, "dict")\nparser.add_argument("dict")\n'
    assert spelled_names(source) == [(2, "weights.npz"), (3, "dict")]


def test_the_check_reads_every_package():
    assert {p.relative_to(ROOT).parts[0] for p in SOURCES} >= {"tf_scripts", "aux_scripts"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_other_module_spells_a_saved_model_file(path):
    assert not spelled_names(path.read_text()), f"{path.relative_to(ROOT)}: use state_gradients.files.saved_model's names"


def _model(size=4, vocab=6):
    return LanguageModel(vocab, 3, size, 1, "LSTM", forget_bias=0.0, seed=2)


def test_weights_round_trip_and_vocabulary(tmp_path):
    model = _model()
    words = {f"w{i}": i for i in range(6)}
    saved = SavedModel(tmp_path / "m")
    saved.write_weights(model, words)
    again = SavedModel(tmp_path / "m").load()
    for name, var in model.named_variables().items():
        np.testing.assert_array_equal(again.named_variables()[name].numpy(), var.numpy())   # float32 stored as is
    assert SavedModel(tmp_path / "m").word_to_id == words
    assert SavedModel(tmp_path / "m" / saved_model.WEIGHTS).word_to_id == words          # the .npz itself
    lookup, missing = SavedModel(tmp_path / "m").id_lookup(["w3", "zz"], "w0")
    assert lookup.tolist() == [3, 0] and missing == 1


def test_vocabulary_rows_must_match(tmp_path):
    SavedModel(tmp_path).write_weights(_model(), {f"w{i}": i for i in range(6)})
    (tmp_path / saved_model.VOCAB).write_text("a\t0\nb\t1\n")
    with pytest.raises(UserError, match="lists 2 words but .* has 6 embedding rows"):
        SavedModel(tmp_path).word_to_id


def test_missing_files_name_the_origin(tmp_path):
    with pytest.raises(UserError, match="not found \\(from my origin\\)"):
        SavedModel(tmp_path, "my origin").word_to_id


def test_latest_checkpoint_without_tensorflow_agrees_with_tensorflow(tmp_path):
    checkpoints = Checkpointer(str(tmp_path), _model())
    for epoch in (1, 2, 7):
        checkpoints.save(epoch)
    saved = SavedModel(tmp_path)
    assert saved.latest_checkpoint() == tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "epoch-7")
    assert saved.epochs_done() == 7
    files = [Path(f).name for f in saved.checkpoint_files()]
    assert files[0] == saved_model.CHECKPOINT_INDEX and "epoch-7.index" in files
    assert all(f == saved_model.CHECKPOINT_INDEX or f.startswith("epoch-7.") for f in files)
    assert SavedModel(tmp_path / "none").epochs_done() == 0


def test_restore_into_prefers_the_checkpoint_then_the_weights(tmp_path):
    trained, other = _model(), LanguageModel(6, 3, 4, 1, "LSTM", forget_bias=0.0, seed=9)
    words = {f"w{i}": i for i in range(6)}
    config = types.SimpleNamespace(path="m.config", encoding="utf-8", data_path="data")  # what the checks name
    saved = SavedModel(tmp_path)
    saved.write_weights(trained, words)
    fresh = _model()
    fresh.embedding.assign(tf.zeros_like(fresh.embedding))
    assert saved.restore_into(config, fresh, words).startswith("Restored " + saved.weights_path)
    np.testing.assert_array_equal(fresh.embedding.numpy(), trained.embedding.numpy())
    with pytest.raises(UserError, match="vocabulary in .* differs"):
        saved.restore_into(config, fresh, {**words, "extra": 6})
    Checkpointer(str(tmp_path), other).save(3)
    assert saved.restore_into(config, fresh, words) == f"Restored checkpoint {tmp_path / 'epoch-3'}"
    np.testing.assert_array_equal(fresh.embedding.numpy(), other.embedding.numpy())

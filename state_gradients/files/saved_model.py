"""The one home of a saved model: the files of its folder, how each is written and restored, and the checks."""
# Shape letters: V vocabulary.
#
# A saved model is a folder: a config's save_path, an sg-import output, or any folder holding
# weights.npz and dict. What it may hold:
#   epoch-N.index, epoch-N.data-*, checkpoint   TF2 checkpoints of training (weights, optimizer
#                                 slots, counters, trainer history, dropout generator); the
#                                 `checkpoint` index names the latest
#   <basename>.N.*               early-stopping saves (trainer earlyStopping)
#   weights.npz + dict           the exported weights (docs/spec.md §4) and the word->id map
#   train/                       TensorBoard summaries of training
#   labels.tsv                   the words in id order (TensorBoard's projector)
#   config.resolved              every key of the config that trained it
#   import.config, import_report.json   written by sg-import beside a checkpoint (epoch-0)
# No other module spells these names (tests/unit/files/test_saved_model.py checks the sources).
# TensorFlow is imported only where a checkpoint or a model is touched, so that the TF-free
# tools (sg-reproduce's planning, the report) can ask what a folder holds.
import functools
import os
import re

import numpy as np

from state_gradients.core import fileio, lm_data
from state_gradients.core.errors import UserError

WEIGHTS = "weights.npz"
VOCAB = "dict"
LABELS = "labels.tsv"
RESOLVED_CONFIG = "config.resolved"
CHECKPOINT_INDEX = "checkpoint"
CHECKPOINT_NAME = "epoch"          # epoch-N, N = epochs done (sg-import writes epoch-0)
KEEP_CHECKPOINTS = 5               # epoch checkpoints kept, as TF1's Saver kept
SUMMARIES = "train"                # TensorBoard event files of training
IMPORT_CONFIG = "import.config"
IMPORT_REPORT = "import_report.json"
IMPORT_FILES = (WEIGHTS, VOCAB, CHECKPOINT_INDEX, IMPORT_CONFIG, IMPORT_REPORT)   # what sg-import writes


class SavedModel:
    """The files of one saved model. location: its folder, or its weights.npz (dict beside it)."""

    def __init__(self, location, origin=None):
        location = os.fspath(location)
        if location.endswith(".npz") and not os.path.isdir(location):
            self.directory, self.weights_path = os.path.dirname(location) or ".", location
        else:
            self.directory, self.weights_path = location, os.path.join(location, WEIGHTS)
        self.origin = origin or location

    @classmethod
    def from_config(cls, config):
        """The model in a config's save_path."""
        return cls(config.save_path, f"save_path of {config.path}")

    def path(self, name):
        return os.path.join(self.directory, name)

    @property
    def vocab_path(self):
        return os.path.join(os.path.dirname(self.weights_path) or ".", VOCAB)

    @property
    def labels_path(self):
        return self.path(LABELS)

    @property
    def resolved_config_path(self):
        return self.path(RESOLVED_CONFIG)

    @property
    def summaries_path(self):
        return self.path(SUMMARIES)

    @property
    def import_config_path(self):
        return self.path(IMPORT_CONFIG)

    @property
    def import_report_path(self):
        return self.path(IMPORT_REPORT)

    @property
    def has_weights(self):
        return os.path.isfile(self.weights_path)

    @property
    def holds_model(self):
        """True when the folder already holds weights, a checkpoint or an import."""
        return any(os.path.exists(p) for p in (self.weights_path, self.checkpoint_index, self.import_config_path))

    @property
    def has_vocab(self):
        return os.path.isfile(self.vocab_path)

    # ------------------------------------------------------------------ checkpoints (TF-free)

    @property
    def checkpoint_index(self):
        return self.path(CHECKPOINT_INDEX)

    def latest_checkpoint(self):
        """The prefix path of the latest checkpoint (e.g. DIR/epoch-12), or None; read without TensorFlow."""
        if not os.path.isfile(self.checkpoint_index):
            return None
        with open(self.checkpoint_index, encoding="utf-8") as handle:
            match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', handle.read(), re.M)
        return self.path(os.path.basename(match.group(1))) if match else None

    def epochs_done(self):
        """N of the latest epoch-N checkpoint; 0 without one."""
        match = re.fullmatch(rf"{CHECKPOINT_NAME}-(\d+)", os.path.basename(self.latest_checkpoint() or ""))
        return int(match.group(1)) if match else 0

    def checkpoint_files(self, prefix=None):
        """The index file and the files of one checkpoint (default the latest): what a copy needs."""
        prefix = prefix or self.latest_checkpoint()
        if prefix is None:
            return []
        return [self.checkpoint_index] + sorted(os.path.join(self.directory, name) for name in os.listdir(self.directory)
                                                if name.startswith(os.path.basename(prefix) + "."))

    def early_stopping_prefix(self, epoch):
        """DIR/<basename of DIR>.<epoch>: inside the folder, with or without a trailing slash."""
        return self.path(f"{os.path.basename(os.path.normpath(self.directory))}.{epoch}")

    # ------------------------------------------------------------------ weights.npz + dict

    def require_weights(self):
        """UserError, naming the origin, when weights.npz is missing."""
        if not self.has_weights:
            raise UserError(f"{self.weights_path} not found (from {self.origin}): train first or run main.py "
                            "--notrain --export_weights with the model's config")

    @functools.cached_property
    def word_to_id(self):
        """The dict's word -> id, checked against weights.npz (one embedding row per word)."""
        self.require_weights()
        if not self.has_vocab:
            raise UserError(f"{self.vocab_path} not found beside {self.weights_path} (from {self.origin}): "
                            f"main.py writes it with {WEIGHTS}")
        word_to_id = lm_data.read_vocab_file(self.vocab_path)
        try:
            with np.load(self.weights_path, allow_pickle=False) as weights:
                rows = weights["embedding"].shape[0]
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"cannot read the embedding of {self.weights_path}: {err}") from None
        if rows != len(word_to_id):
            raise UserError(f"{self.vocab_path} lists {len(word_to_id)} words but {self.weights_path} has "
                            f"{rows} embedding rows")
        return word_to_id

    @property
    def id_to_word(self):
        return lm_data.id_list(self.word_to_id)

    def id_lookup(self, id_to_word, unk):
        """(lookup [V] corpus id -> model id, number of corpus words the model lacks).

        The vocabulary policy of every measure: words are matched by spelling, and the words the
        model lacks map to its unk token (an error when it has none)."""
        unk_id = self.word_to_id.get(unk)
        missing = [w for w in id_to_word if w not in self.word_to_id]
        if missing and unk_id is None:
            raise UserError(f"word {missing[0]!r} of the corpus is not in the vocabulary of {self.weights_path}, "
                            f"which has no {unk}")
        return np.array([self.word_to_id.get(w, unk_id) for w in id_to_word], dtype=np.int32), len(missing)

    def ids(self, corpus, split):
        """The ids of a corpus split (lm_data.Corpus) in the model's vocabulary."""
        lookup, _ = self.id_lookup(corpus.id_to_word, corpus.unk)
        return lookup[getattr(corpus, split)]

    def read_weights(self):
        """The arrays of weights.npz by name."""
        self.require_weights()
        try:
            with np.load(self.weights_path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read weights file {self.weights_path}: {err}") from None

    def load(self, dtype=None):
        """The LanguageModel of weights.npz (float32 unless dtype says otherwise)."""
        import tensorflow as tf

        from state_gradients.models import lm

        return lm.from_arrays(self.read_weights(), dtype or tf.float32, origin=self.weights_path)

    def write_weights(self, model, word_to_id):
        """Write weights.npz and dict atomically (the folder is created); returns the weights path."""
        os.makedirs(self.directory, exist_ok=True)
        tmp = self.weights_path + ".tmp.npz"
        np.savez(tmp, **model.weights_numpy())
        os.replace(tmp, self.weights_path)
        lm_data.write_vocab_file(word_to_id, self.vocab_path)
        self.__dict__.pop("word_to_id", None)
        return self.weights_path

    def write_arrays(self, arrays):
        """Write weights.npz from named arrays as given (sg-import keeps float64); returns its path."""
        os.makedirs(self.directory, exist_ok=True)
        np.savez(self.weights_path, **arrays)
        self.__dict__.pop("word_to_id", None)
        return self.weights_path

    def write_labels(self, id_to_word, encoding="utf-8"):
        lm_data.write_labels_file(id_to_word, self.labels_path, encoding)

    def write_text(self, name, text):
        """An atomic text file of the folder (import.config, import_report.json)."""
        fileio.write_bytes(self.path(name), text.encode("utf-8"))

    def check_against(self, config, model, word_to_id):
        """UserError when weights.npz's vocabulary, head, cell, layers or forget_bias differ from the config's
        model; returns the arrays."""
        saved_vocab = lm_data.read_vocab_file(self.vocab_path, config.encoding) if self.has_vocab else None
        if saved_vocab is None:
            raise UserError(f"{self.vocab_path} not found beside {self.weights_path} (from {self.origin})")
        if saved_vocab != word_to_id:
            raise UserError(f"the vocabulary in {self.vocab_path} differs from the one built from the training "
                            f"data of {config.path} (data_path {config.data_path})")
        arrays = self.read_weights()
        if model.has_output_layer and "softmax_w" not in arrays:
            raise UserError(f"{self.weights_path} has no output layer (softmax_w; an import with --no-head): set "
                            f"output_layer False in {config.path}")
        described = {"basic_cell": (str(arrays.get("cell_type")), model.cell_type),
                     "num_layers": (int(arrays.get("num_layers", -1)), model.num_layers),
                     "forget_bias": (float(arrays.get("forget_bias", float("nan"))),
                                     float(np.float32(model.forget_bias)))}
        for key, (saved, wanted) in described.items():
            if saved != wanted:
                raise UserError(f"{self.weights_path} holds a model with {key} {saved}, but {config.path} says "
                                f"{wanted}")
        return arrays

    # ------------------------------------------------------------------ restoring for use

    def restore_into(self, config, model, word_to_id, *, fresh_weights=False, exporting=False):
        """Restore model for --notrain / --export_weights: the latest checkpoint, else weights.npz + dict (an
        exported or imported model); fresh_weights keeps the initial weights. Returns a line for the log."""
        checkpoints = Checkpointer(self.directory, model)
        if fresh_weights:
            if exporting and checkpoints.latest:
                raise UserError(f"--fresh_weights --export_weights would overwrite the exported weights of "
                                f"{checkpoints.latest} with initial weights")
            return "--fresh_weights: using the seeded initial weights (no checkpoint restored)"
        path = checkpoints.restore()
        if path is not None:
            return f"Restored checkpoint {path}"
        if self.has_weights:
            model.assign_numpy(self.check_against(config, model, word_to_id))
            return f"Restored {self.weights_path} (save_path has no checkpoint)"
        raise UserError(f"no checkpoint and no {WEIGHTS} in save_path {self.directory} (from {config.path}): "
                        "train first, or pass --fresh_weights to use the seeded initial weights")


class Checkpointer:
    """The epoch-N checkpoints of a folder: written every epoch, the latest one restored."""

    def __init__(self, directory, model, **objects):
        import tensorflow as tf

        self.directory = directory
        self.model = model
        self.root = tf.train.Checkpoint(model=model, **objects)
        self.manager = tf.train.CheckpointManager(self.root, directory, max_to_keep=KEEP_CHECKPOINTS,
                                                  checkpoint_name=CHECKPOINT_NAME)

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def restore(self, path=None):
        """Restore checkpoint `path` (a prefix such as DIR/epoch-8; default the latest; None when there is none);
        the model must match it fully."""
        import tensorflow as tf

        path = path or self.latest
        if path is None:
            return None
        try:
            tf.train.Checkpoint(model=self.model).read(path).assert_existing_objects_matched().expect_partial()
            self.root.read(path).expect_partial()
        except (tf.errors.OpError, ValueError, AssertionError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise UserError(f"cannot restore checkpoint {path} into the model of this config "
                            f"(different sizes or cell?): {first}") from None
        return path

    def save(self, epochs_done):
        return self.manager.save(checkpoint_number=epochs_done)

    def write(self, prefix):
        return self.root.write(prefix)


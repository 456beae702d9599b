"""Load a language model from a config, a save_path, a weights.npz + dict or an sg-import output; import one."""
# Shape letters: V vocabulary, E embedding size, H state size.
import dataclasses
import os

from state_gradients.core import configuration, lm_data
from state_gradients.core.errors import UserError
from state_gradients.files.saved_model import SavedModel


@dataclasses.dataclass
class Model:
    """A language model with its vocabulary.

    lm: the state_gradients.models.lm.LanguageModel (embedding [V, E], layers of state size H); word_to_id:
    its vocabulary; saved: the saved model it came from; config: the Config it was built from
    (None for weights.npz + dict, whose arrays give the architecture).
    """
    lm: object
    word_to_id: dict
    saved: SavedModel
    config: configuration.Config | None = None

    @property
    def id_to_word(self):
        """[V] the words in id order."""
        return lm_data.id_list(self.word_to_id)

    @property
    def embedding(self):
        """[V, E] float32 numpy copy of the input embedding."""
        import numpy as np

        return self.lm.embedding.numpy().astype(np.float32)

    def ids(self, words):
        """[n] int32 ids of words (a list of strings); words outside the vocabulary map to <unk>, or raise."""
        return lm_data.words_to_ids(words, self.word_to_id)


def read_config(path, *, train=False, valid=True, test=False):
    """A config file, checked as main.py checks it (train/valid/test: the passes it must support)."""
    return configuration.load_config(path, train=train, valid=valid, test=test, warn=lambda message: None)


def _as_config(config, **changes):
    """A Config from a path or a Config, with `changes` applied by configuration.derive (checked like a file)."""
    if isinstance(config, (str, os.PathLike)):
        config = read_config(os.fspath(config))
    if changes:
        # the progress record names the file the settings came from, as a CLI pass of it does
        config = configuration.derive(config, path=config.path, **changes)
    return config


def model_for_config(config, corpus=None, *, fresh_weights=False, log=print):
    """(Model, its Corpus) of a config, restored as main.py --notrain restores it: the latest checkpoint of
    save_path, else its weights.npz + dict; fresh_weights keeps the seeded initial weights."""
    from state_gradients.models import lm

    config = _as_config(config)
    if corpus is None:
        corpus = lm_data.load_corpus(config, need_train=False, need_valid=True, need_test=False)
    saved = SavedModel.from_config(config)
    model = lm.build_model(config, corpus, log)
    log(saved.restore_into(config, model, corpus.word_to_id, fresh_weights=fresh_weights))
    return Model(model, corpus.word_to_id, saved, config), corpus


def load_model(location, *, dtype=None, log=print):
    """A Model from a config file, a save_path, a folder or .npz with weights.npz + dict, or an sg-import output.

    A config file restores its save_path (checkpoint first, as main.py --notrain); a folder with
    weights.npz + dict (an export, an sg-import output) is read directly; a save_path with only
    checkpoints is restored through the config that trained it (config.resolved, written there).
    dtype: the TensorFlow float type of the weights (default float32).
    """
    location = os.fspath(location)
    if os.path.isfile(location) and not location.endswith(".npz"):
        return model_for_config(location, log=log)[0]
    saved = SavedModel(location)
    if saved.has_weights:
        return Model(saved.load(dtype), saved.word_to_id, saved)
    if os.path.isdir(location) and saved.latest_checkpoint() and os.path.isfile(saved.resolved_config_path):
        return model_for_config(saved.resolved_config_path, log=log)[0]
    if os.path.isdir(location) and saved.latest_checkpoint():
        raise UserError(f"{location} holds checkpoints but neither weights.npz nor the config that trained them: "
                        "pass that config file to load_model")
    raise UserError(f"{location} is not a saved model: no config file, weights.npz + dict or checkpoint there")


def import_model(framework, source, vocab, out, **options):
    """Import a PyTorch, Keras or TF1 RNN LM into the new folder `out` (as sg-import does) and load it.

    framework: "torch", "keras" or "tf1"; vocab: the vocabulary file; options: sg-import's flags
    with underscores (eos_token, unk_token, no_head, reference, embedding_key, rnn_prefix,
    decoder_prefix, nonlinearity, config, forget_bias, log). Returns (Model, report dict);
    UserError when a check fails (out then holds only import_report.json).
    """
    from state_gradients.importing import sources

    report, passed = sources.run_import(framework, source, vocab, out, **options)
    if not passed:
        failed = [c["check"] for c in report["checks"] if not c["passed"]]
        raise UserError(f"import of {source} failed its checks ({', '.join(failed)}): see "
                        f"{SavedModel(out).import_report_path}")
    return load_model(out, log=options.get("log", print)), report

"""One way for the measures (gradient_check, interpret_state, txray) to load a model and resolve their shared flags."""
# Shape letters: V corpus vocabulary, B rows, T positions, H state size.
#
# A model is a weights.npz with its word->id map `dict` beside it: a config's save_path, or any
# directory holding the two (an exported or imported model). The vocabulary policy is one for
# all tools: the data is read through the config as the LM reads it, and its words are mapped
# to the model's ids by spelling; words the model lacks map to its unk token (an error when
# it has none). The defaults of the shared flags are one for all tools too:
#   --interm     the config's grad_interm, else `cell` (the papers' choice; h for GRU/RNN)
#   --max-delay  the NUMBER of delays D (k = 0..D-1), as the config key; default the config's
#                max_delay, else an error that names the flag
#   --layer      the config's grad_layer (default: the top layer)
#   --time-step  the config's time_step when it is one integer, else num_steps - 1
# TensorFlow is imported only when a model is built, so bad flags and configs fail fast.
import os

import numpy as np

from tf_scripts import cells, lm_data
from tf_scripts.errors import UserError

DEFAULT_INTERM = "cell"


class ModelSource:
    """A weights.npz and its word->id map, from a config's save_path or a directory (or the .npz itself)."""

    def __init__(self, location, origin):
        location = os.fspath(location)
        if os.path.isdir(location):
            location = os.path.join(location, lm_data.WEIGHTS_FILE)
        self.origin = origin
        self.weights_path, self.word_to_id = lm_data.load_exported_vocab(location, origin)
        self.id_to_word = lm_data.id_list(self.word_to_id)

    @classmethod
    def from_config(cls, config):
        return cls(config.save_path, f"save_path of {config.path}")

    def load(self, dtype=None):
        """The LanguageModel of weights.npz (float32 unless dtype says otherwise)."""
        import tensorflow as tf

        from tf_scripts.lm import LanguageModel

        return LanguageModel.from_npz(self.weights_path, dtype or tf.float32)

    def id_lookup(self, id_to_word, unk):
        """(lookup [V] corpus id -> model id, number of corpus words the model lacks (mapped to its unk))."""
        unk_id = self.word_to_id.get(unk)
        missing = [w for w in id_to_word if w not in self.word_to_id]
        if missing and unk_id is None:
            raise UserError(f"word {missing[0]!r} of the corpus is not in the vocabulary of {self.weights_path}, "
                            f"which has no {unk}")
        return np.array([self.word_to_id.get(w, unk_id) for w in id_to_word], dtype=np.int32), len(missing)

    def ids(self, corpus, split):
        """The ids of a corpus split in the model's vocabulary."""
        lookup, _ = self.id_lookup(corpus.id_to_word, corpus.unk)
        return lookup[getattr(corpus, split)]


def resolve_time_step(flag, config):
    """--time-step, else the config's time_step when it is one integer, else the window's last position."""
    t = flag
    if t is None:
        t = config.time_step if isinstance(config.time_step, int) else config.num_steps - 1
    if not 0 <= t < config.num_steps:
        raise UserError(f"--time-step must lie in 0..{config.num_steps - 1} (num_steps of {config.path}), got {t}")
    return t


def resolve_interm(flag, config):
    """--interm, else the config's grad_interm, else `cell`."""
    return flag or config.grad_interm or DEFAULT_INTERM


def resolve_max_delay(flag, config, name="--max-delay"):
    """The number of delays D (k = 0..D-1): the flag, else the config's max_delay; UserError without either."""
    value = flag if flag is not None else config.max_delay
    if value is None:
        raise UserError(f"{config.path} has no max_delay: pass {name} D (the number of delays, k = 0..D-1)")
    if value < 1:
        raise UserError(f"{name} must be >= 1 (the number of delays), got {value}")
    return value


def resolve_layer(flag, config, num_layers):
    """--layer, else the config's grad_layer; checked against the model's layers."""
    layer = config.grad_layer if flag is None else flag
    if not 0 <= layer < num_layers:
        raise UserError(f"--layer must lie in 0..{num_layers - 1}, got {layer}")
    return layer


def state_component(cell_type, interm):
    """Index of the state that --interm names (LSTM cell -> c, hidden -> h; GRU/RNN -> h)."""
    return cells.state_index(cell_type, interm)


def make_forward_step(model):
    """Compiled (inputs [B, T], state) -> (every layer's states, per component [B, T, H]; final state); no dropout.

    The one forward pass of the measures: the window's states with the entering state carried in.
    """
    import tensorflow as tf

    from tf_scripts import run_epoch

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), run_epoch.state_spec(model)])
    def step(inputs, state):
        all_states = model.run_layers(model.embed(inputs), state)
        return all_states, model.final_state(all_states)

    return step

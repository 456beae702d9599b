"""The word-level recurrent language model: embedding, stacked TF1-exact cells, softmax."""
# Shape letters: B batch rows, T time steps, V vocabulary, E embedding size, H state size,
# L layers.
#
#   inputs [B, T] --embedding--> x [B, T, E] --layer 0--> h0 [B, T, H] --...--> h_{L-1} [B, T, H]
#                                                                                  |
#                                               logits [B, T, V] <--softmax_w [H, V], softmax_b
#
# A state is a tuple over layers of per-layer tuples: LSTM (c, h), GRU and RNN (h,), each [B, H].
import contextlib
import os

import numpy as np
import tensorflow as tf

from state_gradients.core import families, lm_data
from state_gradients.core.errors import UserError
from state_gradients.models.base import NO_OUTPUT_LAYER
from state_gradients.models.weights import NamedWeights



class LanguageModel(NamedWeights, tf.Module):
    """Variables and maths of the LM; training, evaluation and gradients live elsewhere."""

    def __init__(self, vocab_size, embedding_size, size, num_layers, cell_type, forget_bias=0.0,
                 init_scale=0.05, dtype=tf.float32, seed=1, train_embedding=True, output_layer=True):
        super().__init__(name="lm")
        family = families.family(cell_type)
        if family.cell is None:
            raise UserError(f"basic_cell {cell_type} is not a recurrent cell: its model is {family.model}")
        self.vocab_size, self.embedding_size, self.size = vocab_size, embedding_size, size
        self.num_layers, self.cell_type, self.forget_bias = num_layers, cell_type, float(forget_bias)
        self.dtype = tf.as_dtype(dtype)
        self.cell = family.make_cell(self.forget_bias)
        # The original seeded its initialiser with 1; numpy's generator in a fixed variable order
        # makes the initial weights identical on every machine and TF version.
        rng = np.random.default_rng(seed)
        np_dtype = self.dtype.as_numpy_dtype

        def init(shape, how):
            if how == "uniform":
                return rng.uniform(-init_scale, init_scale, shape).astype(np_dtype)
            return np.full(shape, how, dtype=np_dtype)

        self.embedding = tf.Variable(init((vocab_size, embedding_size), "uniform"), name="embedding",
                                     trainable=train_embedding)
        self.layers = []
        for layer in range(num_layers):
            input_size = embedding_size if layer == 0 else size
            shapes = self.cell.param_shapes(input_size, size)
            self.layers.append({name: tf.Variable(init(shape, how), name=f"layer{layer}/{name}")
                                for name, (shape, how) in shapes.items()})
        # output_layer False: an imported embedding + recurrent stack whose own head did not fit
        # (attention, non-linear, none); state gradients work, perplexities are refused
        self.softmax_w = self.softmax_b = None
        if output_layer:
            self.softmax_w = tf.Variable(init((size, vocab_size), "uniform"), name="softmax_w")
            self.softmax_b = tf.Variable(init((vocab_size,), "uniform"), name="softmax_b")

    @classmethod
    def from_config(cls, config, vocab_size, dtype=tf.float32):
        train_embedding = not (config.pretrained_embeddings and config.fixed_embeddings)
        return cls(vocab_size, config.embedding_size, config.size, config.num_layers, config.basic_cell,
                   forget_bias=config.forget_bias or 0.0, init_scale=config.init_scale, dtype=dtype,
                   seed=config.seed, train_embedding=train_embedding, output_layer=config.output_layer)

    # ---------------------------------------------------------------- forward maths

    def zero_state(self, batch_size):
        zeros = tf.zeros([batch_size, self.size], self.dtype)
        return tuple(tuple(zeros for _ in self.cell.state_names) for _ in range(self.num_layers))

    def embed(self, inputs):
        return tf.nn.embedding_lookup(self.embedding, inputs)

    def run_layer(self, layer, x, state, keep=None):
        """One layer over a window: x [B, T, I], state per-layer tuple -> states per component [B, T, H].

        keep [B, T] bool (None: every step): a step where keep is False leaves the state as it was, as if that
        word were not in the input (rows may keep different numbers of words).
        """
        p = self.layers[layer]
        shape = tf.shape(x)
        xw = self.cell.project_input(p, tf.reshape(x, [-1, shape[2]]))
        xw = tf.transpose(tf.reshape(xw, [shape[0], shape[1], -1]), [1, 0, 2])  # [T, B, P]
        w_h = self.cell.recurrent_weights(p, self.size)
        if keep is None:
            seq = tf.scan(lambda s, xw_t: self.cell.step(p, xw_t, s, w_h)[0], xw, initializer=tuple(state))
        else:
            def step(s, inputs):
                xw_t, keep_t = inputs
                return tuple(tf.where(keep_t, new, old) for new, old in zip(self.cell.step(p, xw_t, s, w_h)[0], s))

            seq = tf.scan(step, (xw, tf.transpose(keep)[:, :, None]), initializer=tuple(state))
        return tuple(tf.transpose(s, [1, 0, 2]) for s in seq)

    def run_layers(self, x, state, keep=None):
        """All layers over a window: x [B, T, E] -> per layer, per state component, [B, T, H] (keep: run_layer's)."""
        all_states = []
        for layer in range(self.num_layers):
            seq = self.run_layer(layer, x, state[layer], keep)
            all_states.append(seq)
            x = seq[-1]  # the next layer reads this layer's h
        return all_states

    @staticmethod
    def final_state(all_states):
        return tuple(tuple(s[:, -1] for s in seq) for seq in all_states)

    def logits(self, outputs):
        """outputs [..., H] -> logits [..., V]."""
        if not self.has_output_layer:
            raise UserError(NO_OUTPUT_LAYER)
        shape = tf.shape(outputs)
        flat = tf.matmul(tf.reshape(outputs, [-1, self.size]), self.softmax_w) + self.softmax_b
        return tf.reshape(flat, tf.concat([shape[:-1], [self.vocab_size]], 0))

    def token_losses(self, outputs, targets):
        """Cross entropy per token with the full softmax, logsumexp(logits) - logits[target]: [B, T].

        The value of TF's sparse softmax cross entropy up to float rounding, without that op's
        always-computed [B, T, V] gradient output (on CPU it cost more than the softmax matmul);
        under XLA it fuses into one pass over the logits.
        """
        logits = self.logits(outputs)
        return tf.reduce_logsumexp(logits, -1) - tf.gather(logits, targets, batch_dims=2)

    # ---------------------------------------------------------------- framework-free weights

    def named_variables(self):
        """weights.npz name -> variable, in file order."""
        named = {"embedding": self.embedding}
        for layer, params in enumerate(self.layers):
            named.update({f"layer{layer}/{name}": var for name, var in params.items()})
        if self.has_output_layer:
            named.update({"softmax_w": self.softmax_w, "softmax_b": self.softmax_b})
        return named

    def weights_numpy(self):
        """The arrays of weights.npz (docs/spec.md §4): weights as float32, plus the cell description."""
        arrays = {"cell_type": np.array(self.cell_type),
                  "forget_bias": np.array(self.forget_bias, dtype=np.float32),
                  "num_layers": np.array(self.num_layers, dtype=np.int64)}
        arrays.update({name: var.numpy().astype(np.float32) for name, var in self.named_variables().items()})
        return arrays

    def copy(self, dtype):
        """The same model (exact weights, no float32 rounding) computing in another dtype."""
        twin = LanguageModel(self.vocab_size, self.embedding_size, self.size, self.num_layers, self.cell_type,
                             forget_bias=self.forget_bias, dtype=dtype, output_layer=self.has_output_layer)
        return twin.assign_from(self)

    @classmethod
    def from_arrays(cls, arrays, dtype=tf.float32, origin="weights file"):
        """Build a model from the arrays of a weights.npz (saved_model.SavedModel.load reads the file)."""
        for name in ("embedding", "num_layers", "cell_type", "forget_bias"):
            if name not in arrays:
                raise UserError(f"weights file {origin} has no array {name!r}")
        vocab_size, embedding_size = arrays["embedding"].shape
        cell_type = str(arrays["cell_type"])
        family = families.family(cell_type, what=f"weights file {origin}: cell_type")
        size = _state_size(family.make_cell(), arrays, embedding_size, origin)
        model = cls(vocab_size, embedding_size, size, int(arrays["num_layers"]), cell_type,
                    forget_bias=float(arrays["forget_bias"]), dtype=dtype, output_layer="softmax_w" in arrays)
        model.assign_numpy(arrays)
        return model


def _state_size(cell, arrays, embedding_size, origin):
    """The state size H of a saved recurrent model, from layer 0's kernel: the cell's param_shapes are affine in H
    (an LSTM's kernel has E + H rows, a cell without recurrent weights 2H columns), so H solves them."""
    kernel = next((n for n in cell.param_shapes(1, 1) if n.endswith("kernel")))
    if f"layer0/{kernel}" not in arrays:
        raise UserError(f"weights file {origin} has no array 'layer0/{kernel}'")
    found = np.shape(arrays[f"layer0/{kernel}"])
    at0, at1 = (cell.param_shapes(embedding_size, h)[kernel][0] for h in (0, 1))
    d = next(d for d in range(len(at0)) if at1[d] != at0[d])
    return (found[d] - at0[d]) // (at1[d] - at0[d])


def model_class(cell_type):
    """The model class of a `basic_cell` value (core/families.py)."""
    return families.family(cell_type).model_class()


def from_arrays(arrays, dtype=tf.float32, origin="weights file"):
    """The model of a weights.npz's arrays, of the family its cell_type names."""
    family = families.family(str(arrays.get("cell_type")), what=f"weights file {origin}: cell_type")
    return family.model_class().from_arrays(arrays, dtype, origin=origin)


def build_model(config, corpus, log, strategy=None):
    """The LanguageModel of a config for corpus's vocabulary (under strategy's scope when given), with the
    config's pretrained embeddings copied in; its weights are the seeded initial ones until restored or trained."""
    with (strategy.scope() if strategy else contextlib.nullcontext()):
        model = model_class(config.basic_cell).from_config(config, corpus.vocab_size)
    if config.pretrained_embeddings:
        _apply_pretrained_embeddings(config, model, corpus, log)
    return model


def _apply_pretrained_embeddings(config, model, corpus, log):
    """Copy the pretrained rows of the vocabulary's words into the embedding; warn about the rest."""
    ids, vectors = lm_data.load_pretrained_embeddings(config.pretrained_embeddings, corpus.word_to_id,
                                                      model.embedding_size, config.encoding)
    if len(ids):
        model.embedding.scatter_update(tf.IndexedSlices(tf.constant(vectors, model.dtype), ids))
    missing = corpus.vocab_size - len(ids)
    if missing:
        log(f"Warning: {missing} of {corpus.vocab_size} vocabulary words are not in "
            f"{os.path.join(config.pretrained_embeddings, lm_data.PRETRAINED_VOCAB)}; they keep their random initial embedding")
    log(f"Pretrained embeddings: {len(ids)} rows from {config.pretrained_embeddings}"
        f"{' (fixed)' if config.fixed_embeddings else ' (trained further)'}")

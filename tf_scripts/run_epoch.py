"""One pass over a data set: compiled training and evaluation steps, state carried, perplexity."""
# Shape letters: N windows in a pass, B batch rows, T time steps of a window (or of a chunk),
# E embedding, H state, V vocabulary, S sampled classes (sampled softmax).
#
# A pass feeds (inputs [B, T], targets [B, T]) pairs in order; the final state of one is the
# initial state of the next and the pass starts from zeros (SPEC 3). The cost of a pair is the
# sum of its token cross entropies / B, so perplexity = exp(sum of costs / sum of T).
#
# With B = 1 and T = 1 (the test set) the windows are single tokens; feeding the same token
# sequence in long chunks with the state carried computes exactly the same numbers, so such a
# pass is fed as [1, TEST_CHUNK] chunks instead of one call per token.
import math
import sys

import tensorflow as tf

from tf_scripts import lm_data
from tf_scripts.errors import UserError, progress_bar

NUM_SAMPLED = 32     # sampled softmax: classes drawn per training step (the original's value)
TEST_CHUNK = 2000    # tokens per call when a B=1, T=1 pass is fed as one sequence
ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-8   # TF1 AdamOptimizer defaults
ADAGRAD_INITIAL = 0.1                                        # TF1 AdagradOptimizer default
XLA_MIN_VOCAB = 1000  # below this the softmax is cheap and XLA's compile time is not worth it


def perplexity(total_cost, positions):
    """exp(sum of per-window costs / number of time positions): SPEC 3."""
    return math.exp(total_cost / positions)


# ------------------------------------------------------------------------------ optimizers

class Optimizer(tf.Module):
    """TF1's GradientDescent, Adam and Adagrad updates, written out (slots are checkpointed).

    Adam: lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t); m += (g - m)(1 - beta1);
    v += (g^2 - v)(1 - beta2); var -= lr_t * m / (sqrt(v) + epsilon), the beta powers kept as
    float32 variables multiplied once per step. Adagrad: acc += g^2; var -= lr * g / sqrt(acc),
    no epsilon. Sparse (IndexedSlices) gradients of the embedding give the same result as the
    dense gradient in all three, as TF1's duplicate-summing sparse updates did.
    """

    KINDS = ("sgd", "adam", "adagrad")

    def __init__(self, kind, variables, learning_rate):
        super().__init__(name="optimizer")
        if kind not in self.KINDS:
            raise UserError(f"optimizer must be one of {', '.join(self.KINDS)}, got {kind!r}")
        self.kind = kind
        self.lr = tf.Variable(float(learning_rate), dtype=tf.float32, trainable=False, name="learning_rate")

        def slots(fill):
            return [tf.Variable(tf.fill(v.shape, tf.constant(fill, v.dtype)), trainable=False) for v in variables]

        if kind == "adam":
            self.m, self.v = slots(0.0), slots(0.0)
            self.beta1_power = tf.Variable(ADAM_BETA1, dtype=tf.float32, trainable=False)
            self.beta2_power = tf.Variable(ADAM_BETA2, dtype=tf.float32, trainable=False)
        elif kind == "adagrad":
            self.accumulators = slots(ADAGRAD_INITIAL)

    def apply(self, grads, variables):
        """One update of `variables` with (already clipped) `grads`; usable inside tf.function."""
        if self.kind == "sgd":
            for g, var in zip(grads, variables):
                lr = tf.cast(self.lr, var.dtype)
                if isinstance(g, tf.IndexedSlices):
                    var.scatter_sub(tf.IndexedSlices(g.values * lr, g.indices, g.dense_shape))
                else:
                    var.assign_sub(lr * g)
        elif self.kind == "adam":
            alpha = self.lr * tf.sqrt(1.0 - self.beta2_power) / (1.0 - self.beta1_power)
            for g, var, m, v in zip(grads, variables, self.m, self.v):
                g = tf.convert_to_tensor(g)
                m.assign_add((g - m) * (1.0 - ADAM_BETA1))
                v.assign_add((g * g - v) * (1.0 - ADAM_BETA2))
                var.assign_sub(m * tf.cast(alpha, var.dtype) / (tf.sqrt(v) + ADAM_EPSILON))
            self.beta1_power.assign(self.beta1_power * ADAM_BETA1)
            self.beta2_power.assign(self.beta2_power * ADAM_BETA2)
        else:
            for g, var, acc in zip(grads, variables, self.accumulators):
                g = tf.convert_to_tensor(g)
                acc.assign_add(g * g)
                var.assign_sub(tf.cast(self.lr, var.dtype) * g * tf.math.rsqrt(acc))


# ------------------------------------------------------------------------------ sampled softmax

def log_uniform_candidates(true_classes, num_sampled, range_max, seed):
    """TF's log-uniform candidate sampler with unique=True, drawn from a stateless seed.

    true_classes int64 [B*T, 1] -> (sampled [S], true expected counts [B*T, 1], sampled
    expected counts [S]), the `sampled_values` of tf.nn.sampled_softmax_loss. As in TF's
    RangeSampler: draw floor(exp(u * log(range_max + 1))) - 1 (mod range_max) until S distinct
    classes came up in `tries` draws; P(c) = log((c + 2) / (c + 1)) / log(range_max + 1);
    expected count = P * S when tries == S, else 1 - (1 - P)^tries.
    """
    log_range = math.log(range_max + 1)
    block = max(8 * num_sampled, 256)

    def draw(i):
        u = tf.random.stateless_uniform([block], tf.random.experimental.stateless_fold_in(seed, i),
                                        dtype=tf.float64)
        return tf.math.floormod(tf.cast(tf.exp(u * log_range), tf.int64) - 1, range_max)

    def too_few(draws, i):
        return tf.size(tf.unique(draws).y) < num_sampled

    def more(draws, i):
        return tf.concat([draws, draw(i)], 0), i + 1

    draws, _ = tf.while_loop(too_few, more, (draw(0), tf.constant(1, tf.int64)),
                             shape_invariants=(tf.TensorShape([None]), tf.TensorShape([])))
    unique, index = tf.unique(draws)
    first_draw = tf.math.unsorted_segment_min(tf.range(tf.size(draws)), index, tf.size(unique))
    tries = tf.cast(first_draw[num_sampled - 1] + 1, tf.float64)

    def expected(classes):
        c = tf.cast(classes, tf.float64)
        p = (tf.math.log(c + 2.0) - tf.math.log(c + 1.0)) / log_range
        count = tf.where(tries == num_sampled, p * num_sampled, -tf.math.expm1(tries * tf.math.log1p(-p)))
        return tf.cast(count, tf.float32)

    sampled = unique[:num_sampled]
    return sampled, expected(true_classes), expected(sampled)


def sampled_token_losses(model, outputs, targets, seed):
    """Sampled-softmax loss per token (training only): outputs [B, T, H], targets [B, T] -> [B*T]."""
    flat = tf.reshape(outputs, [-1, model.size])
    labels = tf.reshape(tf.cast(targets, tf.int64), [-1, 1])
    sampled = log_uniform_candidates(labels, NUM_SAMPLED, model.vocab_size, seed)
    return tf.nn.sampled_softmax_loss(weights=tf.transpose(model.softmax_w), biases=model.softmax_b,
                                      labels=labels, inputs=flat, num_sampled=NUM_SAMPLED,
                                      num_classes=model.vocab_size, sampled_values=sampled)


def check_sampled_softmax(vocab_size):
    """UserError when the vocabulary is too small to draw NUM_SAMPLED distinct classes."""
    if vocab_size < NUM_SAMPLED:
        raise UserError(f"softmax sampled draws {NUM_SAMPLED} distinct classes per step but the "
                        f"vocabulary has only {vocab_size} words; use softmax full")


# ------------------------------------------------------------------------------ compiled steps

def state_spec(model, batch_size=None):
    """TensorSpecs of a model state (per layer, per component [B, H])."""
    spec = tf.TensorSpec([batch_size, model.size], model.dtype)
    return tuple(tuple(spec for _ in model.cell.state_names) for _ in range(model.num_layers))


def use_xla(model, jit_compile=None):
    """jit_compile None = automatic: XLA when the softmax dominates (vocabulary >= XLA_MIN_VOCAB)."""
    return model.vocab_size >= XLA_MIN_VOCAB if jit_compile is None else bool(jit_compile)


def make_eval_step(model, jit_compile=None):
    """Compiled forward pass: (inputs [B, T], targets [B, T], state) -> (float64 cost sum / B, final state).

    Any B and T (one trace serves windows and chunks; XLA compiles once per shape); no dropout,
    full softmax.
    """
    ids = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[ids, ids, state_spec(model)], jit_compile=use_xla(model, jit_compile))
    def step(inputs, targets, state):
        all_states = model.run_layers(model.embed(inputs), state)
        losses = tf.cast(model.token_losses(all_states[-1][-1], targets), tf.float64)
        return tf.reduce_sum(losses) / tf.cast(tf.shape(inputs)[0], tf.float64), model.final_state(all_states)

    return step


def window_gradients(model, variables, inputs, targets, state, seeds, *, batch_size, keep_prob, emb_dropout=True,
                     sampled=False, full_losses=None):
    """(cost, gradients of `variables`, final state) of one training window [B, T], before clipping.

    cost = summed cross entropy / B with the training step's dropout (keep_prob < 1: on the input
    embeddings unless emb_dropout is False, and on the top layer's output) and loss (sampled or
    full softmax); dropout masks and softmax samples come from seeds [2, 3] (stateless ops).
    """
    rate = 1.0 - keep_prob
    with tf.GradientTape() as tape:
        x = model.embed(inputs)
        if rate > 0 and emb_dropout:
            x = tf.nn.experimental.stateless_dropout(x, rate, seed=seeds[:, 0])
        all_states = model.run_layers(x, state)
        outputs = all_states[-1][-1]
        if rate > 0:
            outputs = tf.nn.experimental.stateless_dropout(outputs, rate, seed=seeds[:, 1])
        if sampled:
            losses = sampled_token_losses(model, outputs, targets, seeds[:, 2])
        else:
            losses = (full_losses or model.token_losses)(outputs, targets)
        cost = tf.reduce_sum(losses) / batch_size
    return cost, tape.gradient(cost, variables), model.final_state(all_states)


def make_train_step(model, optimizer, generator, *, batch_size, num_steps, keep_prob, max_grad_norm,
                    emb_dropout=True, sampled=False, jit_compile=None, apply=True):
    """Compiled training step on one [B, T] window -> (cost = summed cross entropy / B, final state).

    window_gradients of model.trainable_variables, clipped by their global norm (sparse embedding
    gradients count their slices, as TF1's clip_by_global_norm did), then one optimizer update.
    Dropout masks and softmax samples come from stateless ops seeded by `generator`, drawn once
    per step. With XLA (use_xla) only the full-softmax loss is compiled: XLA's version of the
    recurrence (a while loop) was slower than TensorFlow's on CPU.
    apply=False: no clipping and no update; the step returns (cost, dense gradients, final state),
    the gradients a training step would clip and apply (what the data-parallel tests compare).
    """
    variables = model.trainable_variables
    ids = tf.TensorSpec([batch_size, num_steps], tf.int32)
    full_losses = model.token_losses
    if use_xla(model, jit_compile):
        full_losses = tf.function(full_losses, jit_compile=True)
    options = dict(batch_size=batch_size, keep_prob=keep_prob, emb_dropout=emb_dropout, sampled=sampled,
                   full_losses=full_losses)

    @tf.function(input_signature=[ids, ids, state_spec(model, batch_size)])
    def step(inputs, targets, state):
        seeds = generator.make_seeds(3)
        cost, grads, final = window_gradients(model, variables, inputs, targets, state, seeds, **options)
        if not apply:
            return cost, [tf.convert_to_tensor(g) for g in grads], final
        grads, _ = tf.clip_by_global_norm(grads, max_grad_norm)
        optimizer.apply(grads, variables)
        return cost, final

    return step


# ------------------------------------------------------------------------------ passes

def evaluation_batches(ids, batch_size, num_steps, *, chunk=TEST_CHUNK, what="data", max_windows=None):
    """(inputs, targets) pairs of an evaluation pass: the B x T windows, or long chunks when B = T = 1."""
    inputs, targets = lm_data.make_windows(ids, batch_size, num_steps, what=what,
                                           max_windows=max_windows)                 # [N, B, T]
    if batch_size == 1 and num_steps == 1:
        inputs, targets = inputs.reshape(1, -1), targets.reshape(1, -1)             # [1, N]
        return [(inputs[:, i:i + chunk], targets[:, i:i + chunk]) for i in range(0, inputs.shape[1], chunk)]
    return list(zip(inputs, targets))


def run_pass(step, batches, state, *, desc="", on_batch=None):
    """Feed the batches in order carrying the state; returns the pass's perplexity.

    on_batch(cost, T) is called after every batch (training summaries).
    """
    total, positions = 0.0, 0
    bar = progress_bar(total=sum(x.size for x, _ in batches), desc=desc, unit="word", unit_scale=True,
                       leave=False, stream=sys.stdout)
    try:
        for inputs, targets in batches:
            cost, state = step(inputs, targets, state)
            cost = float(cost)
            total += cost
            positions += inputs.shape[1]
            bar.update(inputs.size)
            if on_batch is not None:
                on_batch(cost, inputs.shape[1])
    finally:
        bar.close()
    return perplexity(total, positions)


def evaluate(model, ids, batch_size, num_steps, *, step=None, chunk=TEST_CHUNK, what="data", max_windows=None):
    """Perplexity of the model on ids with B x T windows (B = T = 1: chunked), full softmax, no dropout.

    max_windows: only the first max_windows B x T windows (config key valid_batches).
    """
    step = step or make_eval_step(model)
    batches = evaluation_batches(ids, batch_size, num_steps, chunk=chunk, what=what, max_windows=max_windows)
    return run_pass(step, batches, model.zero_state(batches[0][0].shape[0]), desc=what)


def train_epoch(train_step, model, ids, batch_size, num_steps, *, on_batch=None, what="training data",
                initial_state=None):
    """One training pass over ids (the config's B x T windows); returns the training perplexity.

    initial_state: the zero state to start from (default model.zero_state(B); per replica when distributed).
    """
    inputs, targets = lm_data.make_windows(ids, batch_size, num_steps, what=what)
    state = model.zero_state(batch_size) if initial_state is None else initial_state
    return run_pass(train_step, list(zip(inputs, targets)), state, desc="train", on_batch=on_batch)


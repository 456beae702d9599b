"""One pass over a data set: compiled training and evaluation steps, state carried, perplexity."""
# Shape letters: N windows in a pass, B batch rows, T time steps of a window (or of a chunk),
# E embedding, H state, V vocabulary.
#
# A pass feeds (inputs [B, T], targets [B, T]) pairs in order; the final state of one is the
# initial state of the next and the pass starts from zeros (docs/spec.md §3). The cost of a pair is the
# sum of its token cross entropies / B, so perplexity = exp(sum of costs / sum of T).
#
# With B = 1 and T = 1 (the test set) the windows are single tokens; feeding the same token
# sequence in long chunks with the state carried computes exactly the same numbers, so such a
# pass is fed as [1, TEST_CHUNK] chunks instead of one call per token.
import math
import sys

import numpy as np
import tensorflow as tf

from state_gradients.core import lm_data
from state_gradients.core.cli import progress_bar
from state_gradients.core.errors import UserError
from state_gradients.training import sampled_softmax

TEST_CHUNK = 2000    # tokens per call when a B=1, T=1 pass is fed as one sequence
XLA_MIN_VOCAB = 1000  # below this the softmax is cheap and XLA's compile time is not worth it


def perplexity(total_cost, positions):
    """exp(sum of per-window costs / number of time positions): docs/spec.md §3."""
    return math.exp(total_cost / positions)


# ------------------------------------------------------------------------------ compiled steps

def state_spec(model, batch_size=None):
    """TensorSpecs of a model state (per layer, per component [B, H]; a Transformer's is the empty tuple)."""
    return tf.nest.map_structure(lambda s: tf.TensorSpec([batch_size] + list(s.shape[1:]), s.dtype),
                                 model.zero_state(1))


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
            losses = sampled_softmax.sampled_token_losses(model, outputs, targets, seeds[:, 2])
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


# ------------------------------------------------------------------------------ stateless windows

def sliding_windows(ids, num_steps, stride):
    """(inputs, targets, scored) [W, T] of one stream cut into T-token windows every `stride` tokens.

    Every target is scored exactly once: the first window scores all of its T positions, each later one
    the positions not scored before (its last `stride`, fewer for the final window, which ends at
    the data's end). A stride of T gives non-overlapping windows.
    """
    ids = np.asarray(ids, dtype=np.int32)
    n_targets = len(ids) - 1
    if n_targets < 1:
        raise UserError(f"{len(ids)} ids: nothing to score")
    steps = min(num_steps, n_targets)
    inputs, targets, scored, done, start = [], [], [], 0, 0
    while done < n_targets:
        first = min(start, n_targets - steps)
        positions = first + np.arange(steps)
        inputs.append(ids[positions])
        targets.append(ids[positions + 1])
        scored.append(positions >= done)
        done, start = first + steps, start + stride
    return np.stack(inputs), np.stack(targets), np.stack(scored)


def make_token_loss_step(model):
    """Compiled (inputs [B, T]) and targets -> float64 token losses [B, T] from the zero (entering) state."""
    ids = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[ids, ids], jit_compile=use_xla(model))
    def step(inputs, targets):
        all_states = model.run_layers(model.embed(inputs), model.zero_state(tf.shape(inputs)[0]))
        return tf.cast(model.token_losses(all_states[-1][-1], targets), tf.float64)

    return step


def window_perplexity(model, ids, num_steps, stride, *, batch_size=20, step=None, what="data", max_windows=None):
    """Perplexity on windows that carry no state (sliding_windows), any model: a Transformer, or a recurrent
    model with its state reset to zeros at every window. Windows are fed batch_size at a time.

    max_windows: only the first max_windows windows.
    """
    step = step or make_token_loss_step(model)
    inputs, targets, scored = sliding_windows(ids, num_steps, stride)
    if max_windows is not None:
        inputs, targets, scored = inputs[:max_windows], targets[:max_windows], scored[:max_windows]
    total = 0.0
    bar = progress_bar(total=int(scored.sum()), desc=what, unit="word", unit_scale=True, leave=False,
                       stream=sys.stdout)
    try:
        for i in range(0, len(inputs), batch_size):
            losses = step(inputs[i:i + batch_size], targets[i:i + batch_size]).numpy()
            total += float(losses[scored[i:i + batch_size]].sum())
            bar.update(int(scored[i:i + batch_size].sum()))
    finally:
        bar.close()
    return perplexity(total, int(scored.sum()))


def evaluate_pass(model, ids, config, *, test=False, step=None, what="data", max_windows=None):
    """The perplexity main.py prints for a validation (test False) or test pass of a config's model.

    Recurrent models: the batch_size x num_steps windows with the state carried (test: B = T = 1).
    A Transformer (eval_stride): stride num_steps -> the batch_size x num_steps windows, validation and
    test alike (one token at a time would give it no context); a smaller stride -> window_perplexity.
    """
    if config.family.stateful:          # a recurrent model: the state carries the context
        if test:
            return evaluate(model, ids, 1, 1, step=step, what=what)
        return evaluate(model, ids, config.batch_size, config.num_steps, step=step, what=what,
                        max_windows=max_windows)
    if config.eval_stride == config.num_steps:
        return evaluate(model, ids, config.batch_size, config.num_steps, step=step, what=what,
                        max_windows=max_windows)
    windows = None if max_windows is None else max_windows * config.batch_size
    return window_perplexity(model, ids, config.num_steps, config.eval_stride, batch_size=config.batch_size,
                             what=what, max_windows=windows)


def train_epoch(train_step, model, ids, batch_size, num_steps, *, on_batch=None, what="training data",
                initial_state=None):
    """One training pass over ids (the config's B x T windows); returns the training perplexity.

    initial_state: the zero state to start from (default model.zero_state(B); per replica when distributed).
    """
    inputs, targets = lm_data.make_windows(ids, batch_size, num_steps, what=what)
    state = model.zero_state(batch_size) if initial_state is None else initial_state
    return run_pass(train_step, list(zip(inputs, targets)), state, desc="train", on_batch=on_batch)


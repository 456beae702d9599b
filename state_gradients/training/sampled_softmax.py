"""The sampled softmax of training (softmax sampled): TF's log-uniform candidate sampler from a stateless seed, and the loss."""
# Shape letters: B batch rows, T time steps, H state, V vocabulary, S sampled classes.
import math

import tensorflow as tf

from state_gradients.core.errors import UserError

NUM_SAMPLED = 32     # classes drawn per training step (the original's value)


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

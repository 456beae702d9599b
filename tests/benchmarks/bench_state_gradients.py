"""Benchmark: state gradients of the paper's model, this engine versus the original algorithm."""
# Shape letters: T window length, E embedding, H state, D delays, C classes.
#
# Prints measured figures only. The original algorithm (one process per time step, B = 1,
# H separate reverse-mode gradients per window, each back through the whole window) is
# reproduced inside one tf.function and timed on a sample of (window, time step) pairs; the
# total for all T time steps and all windows is extrapolated from that sample.
import argparse
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from state_gradients.core import lm_data  # noqa: E402
from state_gradients.engine.recurrent import StateGradients  # noqa: E402
from state_gradients.models.lm import LanguageModel  # noqa: E402


def matmul_gflops(n=2048, repeat=10):
    a, b = tf.random.normal([n, n]), tf.random.normal([n, n])
    tf.matmul(a, b).numpy()
    start = time.perf_counter()
    for _ in range(repeat):
        tf.matmul(a, b).numpy()
    return 2 * n ** 3 * repeat / (time.perf_counter() - start) / 1e9


def original_algorithm(model, max_delay):
    """For one (window, t): H reverse-mode gradients of s_t[c] w.r.t. the window's inputs, c = 0..H-1."""
    size, emb = model.size, model.embedding_size

    @tf.function
    def grads(x, state, t, with_backward):
        def body(c, acc):
            with tf.GradientTape() as tape:
                tape.watch(x)
                s = model.run_layers(x, state)[0][0][0, t, c]
            if with_backward:
                g = tape.gradient(s, x)[0]
            else:  # forward only: timed separately so the baseline is not charged H forwards
                g = tf.zeros_like(x[0]) + s
            start = tf.maximum(t - max_delay + 1, 0)
            return c + 1, acc.write(c, tf.pad(g[start:t + 1], [[0, max_delay - (t + 1 - start)], [0, 0]]))
        acc = tf.TensorArray(x.dtype, size=size, element_shape=[max_delay, emb])
        _, acc = tf.while_loop(lambda c, _: c < size, body, [0, acc])
        return acc.stack()                                           # [H, D, E]
    return grads


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--valid", default="../shared/data/ptb/valid.txt", help="PTB validation text")
    parser.add_argument("--train", default="../shared/data/ptb/train.txt", help="PTB training text (vocabulary)")
    parser.add_argument("--windows", type=int, default=3, help="windows timed for the engine")
    parser.add_argument("--baseline-pairs", type=int, default=2, help="(window, t) pairs timed for the original")
    parser.add_argument("--classes", type=int, default=7, help="POS classes averaged besides the overall mean")
    args = parser.parse_args(argv)
    emb, size, steps, delays = 64, 256, 200, 50
    vocab = lm_data.build_vocab(lm_data.read_words(args.train))
    ids = lm_data.words_to_ids(lm_data.read_words(args.valid), vocab)
    inputs, _ = lm_data.make_windows(ids, 1, steps)
    n_windows = inputs.shape[0]
    model = LanguageModel(len(vocab), emb, size, 1, "LSTM", init_scale=0.05)
    print(f"model: LSTM E={emb} H={size}, T={steps}, max_delay={delays}, PTB valid: {len(ids)} words, "
          f"{n_windows} windows (B=1)")
    rate = matmul_gflops()
    print(f"matmul rate (2048x2048 fp32): {rate:.1f} GFLOP/s")

    engine = StateGradients(model, layer=0, component=0, time_steps=range(steps), max_delay=delays,
                            num_steps=steps)
    rng = np.random.default_rng(0)
    masks = np.concatenate([np.ones((1, 1, steps)), rng.random((args.classes, 1, steps)) < 0.3]).astype(float)
    state = model.zero_state(1)
    engine.class_sums(inputs[0], state, masks)                   # trace
    start = time.perf_counter()
    for i in range(args.windows):
        engine.class_sums(inputs[i + 1], state, masks)
    per_window = (time.perf_counter() - start) / args.windows
    flop = sum(steps - k for k in range(delays)) * emb * size * 4 * size * 2
    print(f"engine: {per_window:.2f} s per window (all {steps} time steps x {delays} delays, "
          f"{args.classes + 1} averages); {flop / 1e9:.0f} GFLOP of matmul per window -> "
          f"{flop / per_window / 1e9:.1f} GFLOP/s = {100 * flop / per_window / 1e9 / rate:.0f}% of the matmul rate")
    print(f"engine, full PTB validation set (extrapolated): {per_window * n_windows / 60:.1f} min")

    grads = original_algorithm(model, delays)
    x = model.embed(inputs[0])
    for flag in (True, False):
        grads(x, state, tf.constant(steps - 1), flag)                # trace both variants
    timings = {}
    for flag in (True, False):
        start = time.perf_counter()
        for p in range(args.baseline_pairs):
            t = tf.constant(int(rng.integers(0, steps)))
            grads(model.embed(inputs[p]), state, t, flag).numpy()
        timings[flag] = (time.perf_counter() - start) / args.baseline_pairs
    backward_only = timings[True] - timings[False]
    print(f"original algorithm: {timings[True]:.2f} s per (window, t) measured with {size} forwards; "
          f"{backward_only:.2f} s for its {size} backward passes alone")
    total = backward_only * steps * n_windows
    print(f"original algorithm, full PTB validation set (extrapolated, backward passes only): "
          f"{total / 3600:.1f} h")
    print(f"speed-up: {total / (per_window * n_windows):.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

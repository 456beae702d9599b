"""Benchmark: a Transformer's state gradients, the forward-mode engine versus reverse-mode GradientTape.jacobian."""
# Shape letters: T window length, E embedding, D model size, F feed-forward size, A heads,
# K head size, P delays, L blocks, V vocabulary.
#
# Prints measured figures only. The model has the comparison's shape (random weights: the cost
# does not depend on their values). The engine runs one validation window (1 row, every t,
# P delays, the overall class) as the gradient pass does; its matmul FLOPs are counted from the
# shapes it multiplies and compared with this machine's float32 matmul rate. The baseline is
# the naive route: GradientTape.jacobian of the window's states h_t [T, D] w.r.t. the input
# embeddings [T, E], chunked over target positions so that it fits in memory; a few chunks
# are timed and the whole window extrapolated from them.
import argparse
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from state_gradients.engine.transformer import TransformerStateGradients  # noqa: E402
from state_gradients.models.transformer import TransformerLM  # noqa: E402

PTB_VALID_WINDOWS = 367      # 73,760 validation tokens in windows of 200 (batch_size 1)


def matmul_gflops(rows=25600, inner=256, cols=1024, repeat=10):
    """float32 matmul rate at the engine's typical shape (N*M*P rows x D) @ (D x F)."""
    a, b = tf.random.normal([rows, inner]), tf.random.normal([inner, cols])
    tf.matmul(a, b).numpy()
    start = time.perf_counter()
    for _ in range(repeat):
        tf.matmul(a, b).numpy()
    return 2 * rows * inner * cols * repeat / (time.perf_counter() - start) / 1e9


def engine_flops(steps, delays, emb, size, ffn, heads, layers):
    """Matmul FLOPs of one window row: every source j of the window pushes E tangents through P offsets."""
    k = size // heads
    per_tangent = 0
    for layer in range(layers):
        width = 1 if layer == 0 else delays            # block 0's input tangent sits at offset 0 only
        per_tangent += 2 * width * size * 3 * size                                   # query/key/value
        per_tangent += 2 * delays * (size * size + 2 * size * ffn)                   # projection, MLP
        # attention: scores of the changed keys, their values, the changed values, the query part (J_t)
        per_tangent += 2 * heads * (3 * delays * width * k + width * k * k)
    return steps * emb * per_tangent


def time_engine(model, steps, delays, repeat):
    engine = TransformerStateGradients(model, layer=model.num_layers - 1, component=0, time_steps=range(steps),
                                       max_delay=delays, num_steps=steps)
    inputs = np.random.default_rng(0).integers(0, model.vocab_size, (1, steps))
    masks = np.ones((1, 1, steps))
    began = time.perf_counter()
    engine.class_sums(inputs, (), masks)                 # traces once
    first = time.perf_counter() - began
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        engine.class_sums(inputs, (), masks)
        times.append(time.perf_counter() - began)
    return first, float(np.median(times))


def time_baseline(model, steps, chunk, chunks):
    """Seconds per chunk of `chunk` target positions of GradientTape.jacobian(h[t], x)."""
    inputs = tf.constant(np.random.default_rng(0).integers(0, model.vocab_size, (1, steps)))

    @tf.function
    def jac(first):
        x = model.embed(inputs)
        with tf.GradientTape() as tape:
            tape.watch(x)
            h = model.run_layers(x)[-1][0][0]                                          # [T, D]
            part = h[first:first + chunk]
        return tape.jacobian(part, x, experimental_use_pfor=True)                     # [chunk, D, 1, T, E]

    jac(tf.constant(0)).numpy()
    times = []
    for i in range(chunks):
        began = time.perf_counter()
        jac(tf.constant((i + 1) * chunk % (steps - chunk))).numpy()
        times.append(time.perf_counter() - began)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200, help="T (default 200)")
    parser.add_argument("--delays", type=int, default=50, help="P (default 50)")
    parser.add_argument("--embedding", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3, help="timed engine windows after the first (default 3)")
    parser.add_argument("--chunk", type=int, default=5, help="target positions per baseline jacobian (default 5)")
    parser.add_argument("--chunks", type=int, default=2, help="timed baseline chunks (default 2)")
    args = parser.parse_args()
    ffn = 4 * args.size
    model = TransformerLM(args.vocab, args.embedding, args.size, args.layers, args.heads, ffn, args.steps)
    print(f"model: Transformer, {args.layers} blocks, D {args.size}, E {args.embedding}, {args.heads} heads, "
          f"F {ffn}, T {args.steps}, {args.delays} delays; TensorFlow {tf.__version__}, {os.cpu_count()} CPUs")
    rate = matmul_gflops()
    print(f"float32 matmul rate (25600x256 @ 256x1024): {rate:.1f} GFLOP/s")
    flops = engine_flops(args.steps, args.delays, args.embedding, args.size, ffn, args.heads, args.layers)
    first, per_window = time_engine(model, args.steps, args.delays, args.repeat)
    print(f"engine: first window {first:.1f} s (with tracing), then {per_window:.2f} s per window "
          f"(median of {args.repeat}); counted matmul FLOPs {flops / 1e12:.2f} TFLOP per window, "
          f"{flops / per_window / 1e9:.1f} GFLOP/s = {100 * flops / per_window / 1e9 / rate:.0f}% of the matmul rate")
    per_chunk = time_baseline(model, args.steps, args.chunk, args.chunks)
    baseline = per_chunk * args.steps / args.chunk
    print(f"baseline GradientTape.jacobian: {per_chunk:.2f} s per {args.chunk} target positions (median of "
          f"{args.chunks}), extrapolated {baseline:.0f} s per window (all {args.steps} positions, every source)")
    print(f"speed-up of the engine over the baseline: {baseline / per_window:.1f}x")
    for workers in (1, 16):
        hours = per_window * PTB_VALID_WINDOWS / workers / 3600
        print(f"estimate for all {PTB_VALID_WINDOWS} PTB validation windows on {workers} worker(s) like this "
              f"machine: {hours:.2f} h")


if __name__ == "__main__":
    main()

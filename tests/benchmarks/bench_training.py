"""Benchmark: training words/s and test-pass seconds of the paper's PTB model against the machine's matmul FLOP bound."""
# Shape letters: B batch, T time steps, E embedding, H state, V vocabulary, P pre-activation
# size of a cell (LSTM 4H, GRU 3H, RNN H).
#
# FLOPs of one training step, counting matmuls only: forward per word = input projection
# 2*I*P + recurrence 2*H*P per layer + softmax 2*H*V; forward + backward ~ 3x forward.
# The bound is the words/s of a step whose matmuls all ran at the measured large-matmul rate.
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from state_gradients.core import configuration, lm_data  # noqa: E402
from state_gradients.models.lm import LanguageModel  # noqa: E402
from state_gradients.training import optimizers, run_epoch, trainer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(REPO, "config", "ptb-norm-wsj_64e_256h_steps200.config")
DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data", "ptb")


def matmul_gflops(m, k, n, reps=10):
    """Best measured GFLOP/s of one compiled float32 tf.matmul [m, k] x [k, n] (result written out)."""
    a = tf.random.uniform([m, k])
    b = tf.random.uniform([k, n])
    run = tf.function(lambda: tf.matmul(a, b))
    run()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        run().numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * m * k * n / best / 1e9


def forward_flops_per_word(model):
    """Matmul FLOPs of the forward pass per word (input projections, recurrences, softmax)."""
    flops = 0
    for layer in range(model.num_layers):
        input_size = model.embedding_size if layer == 0 else model.size
        pre = sum(shape[-1] for name, (shape, _) in model.cell.param_shapes(input_size, model.size).items()
                  if "kernel" in name)
        flops += 2 * input_size * pre + 2 * model.size * pre
    return flops + 2 * model.size * model.vocab_size


def bench_training(config, model, ids, steps, warmup, jit_compile):
    optimizer = optimizers.Optimizer(config.optimizer, model.trainable_variables, config.learning_rate)
    step = run_epoch.make_train_step(
        model, optimizer, trainer.make_generator(config), batch_size=config.batch_size,
        num_steps=config.num_steps, keep_prob=config.dropout, max_grad_norm=config.max_grad_norm,
        emb_dropout=not config.no_emb_dropout, sampled=config.softmax == "sampled", jit_compile=jit_compile)
    inputs, targets = lm_data.make_windows(ids, config.batch_size, config.num_steps)
    state = model.zero_state(config.batch_size)
    for i in range(warmup):
        cost, state = step(inputs[i], targets[i], state)
    float(cost)
    start = time.perf_counter()
    for i in range(warmup, warmup + steps):
        cost, state = step(inputs[i], targets[i], state)
    float(cost)
    elapsed = time.perf_counter() - start
    return steps * config.batch_size * config.num_steps / elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="config whose model is measured")
    parser.add_argument("--data", default=DEFAULT_DATA, help="PTB directory (train.txt, valid.txt, test.txt)")
    parser.add_argument("--steps", type=int, default=20, help="measured training steps (after warm-up)")
    parser.add_argument("--warmup", type=int, default=3, help="training steps before measuring (tracing)")
    parser.add_argument("--jit", choices=["auto", "off", "on", "all"], default="all",
                        help="XLA for the training step's softmax loss (auto: run_epoch.use_xla; all: each)")
    parser.add_argument("--notest", action="store_true", help="skip the test-pass timing")
    args = parser.parse_args(argv)

    config = configuration.load_config(args.config, warn=lambda m: None)
    config.data_path = args.data
    corpus = lm_data.load_corpus(config, need_valid=False, need_test=not args.notest)
    model = LanguageModel.from_config(config, corpus.vocab_size)
    print(f"model: {config.basic_cell} L {config.num_layers} E {config.embedding_size} H {config.size} "
          f"V {corpus.vocab_size}; B {config.batch_size} T {config.num_steps}; softmax {config.softmax}; "
          f"{os.cpu_count()} CPUs; TensorFlow {tf.__version__}")

    bt, h, v = config.batch_size * config.num_steps, config.size, corpus.vocab_size
    # the softmax's forward, weight-gradient and input-gradient matmuls: most of a step's FLOPs
    rates = {f"[{m}x{k}]x[{k}x{n}]": matmul_gflops(m, k, n) for m, k, n in ((bt, h, v), (h, bt, v), (bt, v, h))}
    peak = max(rates.values())
    recurrent = matmul_gflops(config.batch_size, h, 4 * h)
    print("matmul GFLOP/s (best of 10): " + ", ".join(f"{r:.1f} at {k}" for k, r in rates.items())
          + f"; {recurrent:.1f} at [{config.batch_size}x{h}]x[{h}x{4 * h}] (recurrence)")
    per_word = 3 * forward_flops_per_word(model)
    bound = peak * 1e9 / per_word
    print(f"training step FLOPs per word (3 x forward matmuls): {per_word / 1e6:.2f} M; "
          f"bound at {peak:.1f} GFLOP/s: {bound:.0f} words/s")

    for jit in {"auto": [None], "off": [False], "on": [True], "all": [False, True]}[args.jit]:
        words = bench_training(config, model, corpus.train, args.steps, args.warmup, jit)
        print(f"training (jit_compile={jit}): {words:.0f} words/s over {args.steps} steps = "
              f"{100 * words / bound:.1f}% of the bound")

    if not args.notest:
        eval_step = run_epoch.make_eval_step(model)
        run_epoch.evaluate(model, corpus.test[:50], 1, 1, step=eval_step)  # trace outside the timing
        start = time.perf_counter()
        ppl = run_epoch.evaluate(model, corpus.test, 1, 1, step=eval_step)
        seconds = time.perf_counter() - start
        print(f"test pass (B=1, T=1 fed in chunks of {run_epoch.TEST_CHUNK}): {len(corpus.test) - 1} tokens "
              f"in {seconds:.1f} s ({(len(corpus.test) - 1) / seconds:.0f} words/s; ppl of the untrained "
              f"model {ppl:.1f})")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())

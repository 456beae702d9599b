"""Measure the float32 Transformer engine's error against float64 on a trained model's validation windows."""
# Prints measured figures only. Per window (batch_size 1, the model's T): max |G32 - G64| over every
# (t, k) / the window's largest |G64|, for the residual stream after the top block; the float64
# engine runs on the same (float32-saved) weights, so the difference is the engine's own rounding.
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
from state_gradients.engine.transformer import TransformerStateGradients  # noqa: E402
from state_gradients.files.saved_model import SavedModel  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a Transformer's folder with weights.npz and dict")
    parser.add_argument("--valid", required=True, help="the validation text (e.g. data/ptb/valid.txt)")
    parser.add_argument("--windows", type=int, default=2, help="validation windows from the first (default 2)")
    parser.add_argument("--max-delay", type=int, default=50)
    args = parser.parse_args(argv)
    saved = SavedModel(args.model)
    m32, m64 = saved.load(tf.float32), saved.load(tf.float64)
    steps = m32.num_steps
    ids = lm_data.words_to_ids(lm_data.read_words(args.valid), saved.word_to_id)
    inputs, _ = lm_data.make_windows(ids, 1, steps, max_windows=args.windows)
    kwargs = dict(layer=m32.num_layers - 1, component=0, time_steps=range(steps), max_delay=args.max_delay,
                  num_steps=steps)
    e32, e64 = TransformerStateGradients(m32, **kwargs), TransformerStateGradients(m64, **kwargs)
    print(f"model {args.model}: {m32.num_layers} blocks, D {m32.size}, E {m32.embedding_size}, T {steps}, "
          f"{args.max_delay} delays")
    for i, window in enumerate(inputs):
        began = time.perf_counter()
        g32, _ = e32.jacobians(window, ())
        g64, _ = e64.jacobians(window, ())
        scale = max(np.abs(g).max() for _, g in g64.values())
        error = max(np.abs(g32[k][1] - g64[k][1]).max() for k in g64) / scale
        print(f"window {i}: max |G32 - G64| / max |G64| = {error:.2e} ({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()

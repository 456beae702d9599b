"""Measure the float32 engine's error against float64 on models trained on PTB, for every cell and layer."""
# Prints measured figures only. The setting and the measure are tests/precision_check.py's: one
# SGD epoch on the first 1,500 lines of PTB train, 2 layers, E 8, H 12, T 10; per validation
# window, max |G32 - G64| / the window's largest |G64|, the maximum over the windows. "carried in
# float64" is what the gradient pass does; "carried in float32" is what it did before.
import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from state_gradients.core.families import FAMILIES  # noqa: E402
from tests import precision_check  # noqa: E402

CELL_TYPES = [name for name, family in FAMILIES.items() if family.cell is not None]   # the recurrent families


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ptb", default=os.path.join(REPO, "..", "shared", "data", "ptb"),
                        help="folder with PTB train/valid/test.txt")
    parser.add_argument("--cells", nargs="+", default=list(CELL_TYPES), choices=CELL_TYPES)
    parser.add_argument("--windows", type=int, default=None, help="validation windows (default: all)")
    parser.add_argument("--out", default=None, help="folder for the trained models (kept; default: a temporary one)")
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="sg-precision-")
    data = precision_check.ptb_slice(args.ptb, out)
    print("cell             layer  windows  carried in float64  carried in float32  (max relative error)")
    for cell in args.cells:
        model, valid = precision_check.train(out, cell, data)
        for layer in range(model.num_layers):
            began = time.perf_counter()
            after = precision_check.pass_errors(model, valid, layer, 10, args.windows)
            before = precision_check.pass_errors(model, valid, layer, 10, args.windows, carry_float32=True)
            print(f"{cell:<16} {layer:>5}  {len(after):>7}  {after.max():>18.3g}  {before.max():>18.3g}"
                  f"  ({time.perf_counter() - began:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a gradient pass wrote, for comparing one pass with merged shards (a helper, not a test module)."""
import os

import numpy as np

from state_gradients.files import gradient_files


def pass_files(root):
    """Every file one pass writes (relative path -> array or text), without the shards, blocks and progress record.

    The block files (grad_blocks) are compared by tests/unit/passes/test_blocks.py with their own bound.
    """
    out = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (gradient_files.SHARDS, gradient_files.BLOCKS)]
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), root)
            if name.endswith(".npy"):
                out[rel] = np.load(os.path.join(folder, name))
            elif name != gradient_files.PROGRESS_FILE:
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    out[rel] = handle.read()
    return out


def assert_same_pass(one, merged):
    """Same files; text byte-identical; arrays within 1e-12 of the largest entry, or one ulp of float32 files.

    The float64 sums of shards are grouped differently from one pass's, and a float32 file
    rounds the total once: a value within 1e-12 of a rounding boundary may land one ulp away.
    """
    assert sorted(one) == sorted(merged)
    for rel, value in one.items():
        if isinstance(value, str):
            assert merged[rel] == value, rel
        else:
            scale = max(np.abs(value).max(), 1e-30)
            ulp = np.spacing(np.abs(value)).astype(np.float64) if value.dtype == np.float32 else 0.0
            assert np.all(np.abs(merged[rel].astype(np.float64) - value) <= 1e-12 * scale + ulp), rel

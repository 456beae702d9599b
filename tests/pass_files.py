"""What a gradient pass wrote, for comparing one pass with merged shards (a helper, not a test module)."""
import os

import numpy as np

from tf_scripts import gradient_files


def pass_files(root):
    """Every file one pass writes (relative path -> array or text), without the shards and the progress record."""
    out = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != gradient_files.SHARDS]
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), root)
            if name.endswith(".npy"):
                out[rel] = np.load(os.path.join(folder, name))
            elif name != gradient_files.PROGRESS_FILE:
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    out[rel] = handle.read()
    return out


def assert_same_pass(one, merged):
    """Same files; text byte-identical; arrays within 1e-12 of the largest entry."""
    assert sorted(one) == sorted(merged)
    for rel, value in one.items():
        if isinstance(value, str):
            assert merged[rel] == value, rel
        else:
            scale = max(np.abs(value).max(), 1e-30)
            assert np.abs(merged[rel] - value).max() <= 1e-12 * scale, rel

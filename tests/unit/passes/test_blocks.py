"""Block sums (grad_blocks): recomputed from the dump, adding up to the totals, the same after shards, a merge and a resume."""
# Shape letters: D delays, C classes (0 = all words), H state, E embedding.
import json
import os

import numpy as np
import pytest

from state_gradients.core.errors import UserError
from state_gradients.files import gradient_files
from state_gradients.measures import analysis
from state_gradients.passes import gradient_pass

from tests import tiny_corpus
from tests.tiny_corpus import TAGS

U32 = 2.0 ** -24          # float32 unit roundoff
U64 = 2.0 ** -53          # float64 unit roundoff
CLASSES = [None, ("nouns", {"NN", "NNS"}), ("verbs", {"VBD"})]


@pytest.fixture
def make(tiny_tagged_corpus):
    root = tiny_tagged_corpus(valid_lines=14)
    return (lambda grad_dir, batch_size=1, **keys: tiny_corpus.pass_setup(root, grad_dir, batch_size,
                                                                          **{"grad_blocks": 4, **keys})), root


def _blocks(grad_dir):
    return gradient_files.read_blocks(str(grad_dir))


def _dumped_block_sums(grad_dir, batch_size, ranges, delays):
    """Per block: {(k, class index): (sum of the dumped float32 matrices, count, largest |G|, sum of G^T G)}, from files
    and mapping."""
    out = [{} for _ in ranges]
    for t_dir in sorted(os.listdir(grad_dir)):
        if not t_dir.startswith("timestep_"):
            continue
        for k in delays:
            folder = os.path.join(grad_dir, t_dir, f"delay_{k}")
            if not os.path.isdir(folder):
                continue
            for line in open(os.path.join(folder, "mapping.txt"), encoding="utf-8"):
                n, word = line.split("\t")[:2]
                g = np.load(os.path.join(folder, f"{n}.npy")).astype(np.float64)
                b = next(i for i, (lo, hi) in enumerate(ranges) if lo <= int(n) // batch_size < hi)
                for c, cls in enumerate(CLASSES):
                    if cls is None or TAGS.get(word) in cls[1]:
                        total, count, big, gram = out[b].get((k, c), (0.0, 0, 0.0, 0.0))
                        out[b][(k, c)] = (total + g, count + 1, max(big, np.abs(g).max()), gram + g.T @ g)
    return out


@pytest.mark.parametrize("batch_size", [1, 3])
def test_block_sums_match_the_dump_and_add_up_to_the_totals(make, batch_size):
    build, root = make
    config, corpus, model = build("one", batch_size, grad_dump=True)
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    n_batches = json.load(open(root / "one" / gradient_files.PROGRESS_FILE))["batches"]
    blocks = _blocks(root / "one")
    ranges = [gradient_files.shard_range(n_batches, b, 4) for b in range(1, 5)]
    assert [(int(b["first_batch"]), int(b["stop_batch"])) for b in blocks] == ranges
    delays = list(blocks[0]["delays"])
    assert list(blocks[0]["classes"]) == ["", "nouns", "verbs"] and delays == [0, 1, 2]
    dumped = _dumped_block_sums(str(root / "one"), batch_size, ranges, delays)
    for block, want in zip(blocks, dumped):
        assert block["sums"].dtype == np.float32 and block["sums"].shape == (3, 3, 4, 3)
        for di, k in enumerate(delays):
            for c in range(3):
                total, count, big, gram = want.get((k, c), (np.zeros((4, 3)), 0, 0.0, np.zeros((3, 3))))
                assert block["counts"][di, c] == count
                # each dumped matrix is G rounded to float32 (u |G| each), the block file rounds the sum once
                tol = (count + 1) * U32 * big
                np.testing.assert_allclose(block["sums"][di, c], total, rtol=0, atol=tol)
                # G^T G of the float32-rounded G: 2 u per product, H = 4 products an entry; the file rounds once
                grams = gradient_files.unpack_grams(block["grams"].astype(np.float64))
                assert block["grams"].dtype == np.float32 and grams.shape == (3, 3, 3, 3)
                assert list(block["gram_delays"]) == delays      # 0, 1, 2 are all magnitude delays
                np.testing.assert_allclose(grams[di, c], gram, rtol=0, atol=(2 * 4 * count + 1) * U32 * big ** 2 * 4)
    # the blocks add up to the float64 totals behind the averages: counts exactly, sums within the
    # roundings of the block files (u |S_b| each) and of the average file (u |mean| times the count)
    for di, k in enumerate(delays):
        for c, cls in enumerate(CLASSES):
            name = None if cls is None else cls[0]
            count = int(open(analysis.count_path(str(root / "one"), k, name)).read())
            assert sum(int(b["counts"][di, c]) for b in blocks) == count
            mean = np.load(analysis.average_path(str(root / "one"), k, name)).astype(np.float64)
            added = sum(b["sums"][di, c].astype(np.float64) for b in blocks)
            tol = U32 * (sum(np.abs(b["sums"][di, c]).max() for b in blocks) + count * np.abs(mean).max()) * 1.01
            np.testing.assert_allclose(added, count * mean, rtol=0, atol=tol)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_shards_and_merge_keep_the_blocks(make, batch_size):
    build, root = make
    config, corpus, model = build("one", batch_size, grad_blocks=2)
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    one = _blocks(root / "one")
    config, corpus, model = build("split", batch_size, grad_blocks=2)
    for i in (1, 2, 3):      # 3 shards of the batches cut a block of 2 in two
        gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None, shard=(i, 3))
    parts = {}
    for i in (1, 2, 3):
        folder = gradient_files.shard_dir(str(root / "split"), i, 3)
        for name in os.listdir(os.path.join(folder, gradient_files.BLOCKS)):
            with np.load(os.path.join(folder, gradient_files.BLOCKS, name)) as f:
                parts.setdefault(int(f["block"]), []).append(np.abs(f["sums"]).astype(np.float64))
    assert any(len(p) > 1 for p in parts.values()), "no block is cut by a shard boundary"
    gradient_files.merge_shards(str(root / "split"), log=lambda s: None)
    merged = _blocks(root / "split")
    for a, b in zip(one, merged):
        for key in ("counts", "block", "blocks", "first_batch", "stop_batch", "delays", "classes"):
            np.testing.assert_array_equal(a[key], b[key])
        # a cut block is the float64 sum of float32 parts: u |part| for each part, u |sum| for each file
        bound = U32 * (sum(parts[int(a["block"])]) + 2 * np.abs(a["sums"]))
        assert np.all(np.abs(a["sums"].astype(np.float64) - b["sums"]) <= bound * 1.01)


def test_an_interrupted_pass_writes_the_same_blocks(make, monkeypatch):
    build, root = make
    config, corpus, model = build("whole")
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    config, corpus, model = build("cut")
    real_add, calls = gradient_files.GradientAverages.add, []

    def failing_add(self, *args):
        calls.append(1)
        if len(calls) == 6:      # inside block 2 of 4 (the 14-line text gives more than 8 batches)
            raise KeyboardInterrupt
        return real_add(self, *args)

    monkeypatch.setattr(gradient_files.GradientAverages, "add", failing_add)
    with pytest.raises(KeyboardInterrupt):
        gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None, checkpoint_seconds=0)
    monkeypatch.setattr(gradient_files.GradientAverages, "add", real_add)
    logged = []
    gradient_pass.run_gradient_pass(config, model, corpus, log=logged.append)
    assert any("Resuming" in line for line in logged)
    for a, b in zip(_blocks(root / "whole"), _blocks(root / "cut")):
        for key in a:    # the open block's float64 partial sums were saved and continued: the same bits
            np.testing.assert_array_equal(a[key], b[key])


def test_grams_at_every_delay():
    blocks = gradient_files.GradientBlocks("unused", 10, 2, 0, 10, range(12), ["nouns"], (4, 3))
    assert blocks.gram_delays == list(range(12))
    assert blocks.gram_shape == (12, 2, 3, 3) and blocks.occurrence_shape is None
    with_norm = gradient_files.GradientBlocks("unused", 10, 2, 0, 10, range(12), ["nouns"], (4, 3), np.eye(3))
    assert with_norm.occurrence_shape == (12, 2, 7)          # 4 scalars and an E-vector per delay and class
    packed = gradient_files.pack_grams(np.arange(9.0).reshape(3, 3) + np.arange(9.0).reshape(3, 3).T)
    assert packed.tolist() == [0, 4, 8, 8, 12, 16]   # the upper triangle, row by row
    np.testing.assert_array_equal(gradient_files.unpack_grams(packed), np.arange(9.0).reshape(3, 3)
                                  + np.arange(9.0).reshape(3, 3).T)


def test_block_count_refusals(make):
    build, root = make
    config, corpus, model = build("many", grad_blocks=10_000)
    with pytest.raises(UserError, match="grad_blocks 10000 for a pass of .* batches"):
        gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    with pytest.raises(UserError, match="grad_blocks needs grad_average True"):
        build("none", grad_average=False, pos_mapping=None, pos_classes=None, grad_dump=True)
    with pytest.raises(UserError, match="holds no block files"):
        gradient_files.read_blocks(str(root))


def test_totals_and_blocks_from_the_accumulator_and_an_older_checkpoint(tmp_path):
    # Random float32 windows added one by one: the totals are the float64 sums of the closed blocks
    # (the same values as adding every window, up to float64 rounding of 8 terms: a few ulps), the
    # blocks are the float64 sums of their windows, and a checkpoint written before the totals left
    # out the open block (its sums included it) resumes to the same bits.
    rng = np.random.default_rng(0)
    delays, names, shape, n_batches = list(range(3)), ["nouns"], (4, 3), 8
    windows = [(rng.standard_normal((3, 2) + shape).astype(np.float32), rng.integers(0, 5, (3, 2)),
                rng.standard_normal((3, 2, 3, 3))) for _ in range(n_batches)]

    def accumulator(folder):
        blocks = gradient_files.GradientBlocks(str(tmp_path / folder), n_batches, 3, 0, n_batches, delays, names, shape)
        return gradient_files.GradientAverages(str(tmp_path / folder), delays, names, shape, blocks)

    whole = accumulator("whole")
    for i, (sums, counts, grams) in enumerate(windows):
        whole.add(list(sums), counts, i, grams)
    whole.finish()
    expected = sum(w[0].astype(np.float64) for w in windows)
    # any order of adding 8 float64 terms is within 7 u64 * sum |terms| of the exact sum (twice that between two orders)
    bound = 14 * U64 * sum(np.abs(w[0]).astype(np.float64) for w in windows)
    assert np.all(np.abs(whole.sums - expected) <= bound)
    assert whole.counts.tolist() == sum(w[1] for w in windows).tolist()

    cut = accumulator("cut")
    for i in range(4):                                   # block 2 ([3, 6)) is open after batch 4
        cut.add(list(windows[i][0]), windows[i][1], i, windows[i][2])
    state = dict(cut.state())
    assert cut.blocks.open == 2
    del state["sums_exclude_open_block"]
    state["sums"] = state["sums"] + state["block_sums"]   # the older layout
    resumed = accumulator("cut")
    resumed.load(state)
    for i in range(4, n_batches):
        resumed.add(list(windows[i][0]), windows[i][1], i, windows[i][2])
    resumed.finish()
    for a, b in zip(_blocks(tmp_path / "whole"), _blocks(tmp_path / "cut")):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    # totals: ((b1 + b2) - b2) + b2 + b3 against b1 + b2 + b3: two more roundings of terms no larger than the bound's
    assert np.all(np.abs(resumed.sums - whole.sums) <= 2 * bound)

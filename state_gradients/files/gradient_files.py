"""The gradient pass's files: per-window dumps, running averages, shard ranges, and merging shards into one pass."""
# Shape letters: N windows, B batch rows, T window length, H state, E embedding, D delays,
# C classes (class 0 = all words, then one per POS class file).
#
# No TensorFlow here: sg-merge-gradients only moves files and adds sums.
#
# Sharding: the validation pass's batches 0..n-1 are cut into N contiguous ranges, the first
# n mod N ranges one batch longer (n = 10, N = 3: 0-3, 4-6, 7-9). Shard i of N works in
# GRAD_DIR/shards/{i}-of-{N}/ with its own progress record, writes its windows' dumps (window
# n = batch * B + row, as in one pass) and mapping lines, and keeps its float64 sums and
# counts (grad_sums.npz) instead of averages. merge_shards writes into GRAD_DIR what one pass
# writes:
#
#   shards/1-of-N/[timestep_t/]delay_k/{n}.npy  --moved-->       GRAD_DIR/[timestep_t/]delay_k/{n}.npy
#   shards/i-of-N/.../mapping.txt               --concatenated--> GRAD_DIR/.../mapping.txt (window order)
#   shards/i-of-N/grad_sums.npz                 --summed-->       delay_{k}_avg[_{class}].npy, counts
#   shards/i-of-N/grad_progress.json            --checked-->      GRAD_DIR/grad_progress.json (complete)
#   shards/i-of-N/blocks/block_{b}.npz          --summed per b--> GRAD_DIR/blocks/block_{b}.npz
#
# Blocks (grad_blocks N): the same contiguous split as shards, of the whole pass's batches
# into N blocks (block b covers shard_range(n, b, N)), so a block means the same text in one
# pass and in any sharding; with B > 1 a batch is B rows, so a block is contiguous within
# every stream. GRAD_DIR/blocks/block_{b}.npz holds that block's sums (float32 [D, C, H, E]),
# counts (float64 [D, C]: the sums of the occurrences' weights, whole numbers unless pos_tokens
# gives weights; int64 in files before 2026-12-07), gram_delays (int64 [G]: every delay of the pass since 2026-12-07; the
# ranking delays 0, 1, 2, 5, 10, 20, 40 before), grams (float32 [G, C, E(E+1)/2]: the upper
# triangle, row by row, of the symmetric sum of G^T G over the block's occurrences at those
# delays; unpack_grams restores [G, C, E, E]; the magnitude of G.D comes from it for any D chosen
# after the pass); with grad_norm_file D also norm (float64 [E, E]: that D) and occurrence
# (float64 [D, C, 4 + E]: per delay and class the sum of ‖G·D‖_* over the occurrences whose
# source position is a multiple of state_gradients.NUCLEAR_STRIDE and their count, then the sums
# over all occurrences of ‖J·D‖, ‖J·D‖² and J·D, J the output-level Jacobian:
# state_gradients.occurrence_sums; the J columns are 0 for a model without an output layer), the
# block number b, the
# number of blocks, its batches [first_batch, stop_batch), the delays and the class names ("" for
# class 0, all words). The pass keeps only the open block in float64 and writes it when the next
# begins; a shard writes the part of each block inside its range, and the merge adds the parts.
# The float64 totals (the averages) are kept apart, so blocks never change them; they add up to
# the totals within float32 rounding.
import json
import math
import os
import re

import numpy as np

from state_gradients.core import formats
from state_gradients.core.errors import UserError
from state_gradients.core.fileio import atomic_save_npy, atomic_write, atomic_write_text

PROGRESS_FILE = "grad_progress.json"
SUMS_FILE = "grad_sums.partial"   # not .npy/.npz: the analysis scripts glob those
SHARD_SUMS_FILE = "grad_sums.npz"  # a complete shard's sums and counts (inside shards/, which no script globs)
SHARDS = "shards"
STATES_FILE = "states.npz"          # main.py --states-only: the state entering every batch (in shards/)
BLOCKS = "blocks"                   # GRAD_DIR/blocks/block_{b}.npz (grad_blocks)
_SHARD_NAME = re.compile(r"^(\d+)-of-(\d+)$")


def parse_shard(text):
    """'i/N' -> (i, N) with 1 <= i <= N; UserError otherwise."""
    match = re.fullmatch(r"(\d+)/(\d+)", text or "")
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise UserError(f"--shard must be i/N with 1 <= i <= N, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def shard_range(n_batches, index, count):
    """Batches [first, stop) of shard index (1-based) of count: contiguous, the first n mod N one longer."""
    if count > n_batches:
        raise UserError(f"{count} shards for a pass of {n_batches} batches: use at most {n_batches} shards")
    base, extra = divmod(n_batches, count)
    first = (index - 1) * base + min(index - 1, extra)
    return first, first + base + (1 if index <= extra else 0)


def shard_dir(grad_dir, index, count):
    return os.path.join(grad_dir, SHARDS, f"{index}-of-{count}")


class GradientDump:
    """The original's per-window files: FOLDER(t)/delay_{k}/{n}.npy and delay_{k}/mapping.txt."""

    def __init__(self, folder_of, id_to_word):
        self.folder_of, self.id_to_word = folder_of, id_to_word
        self.pending = {}   # mapping.txt path -> lines not yet appended

    def delay_dir(self, t, k):
        return os.path.join(self.folder_of(t), f"delay_{k}")

    def write(self, numbers, words, out):
        """numbers [R] window numbers, words [R, T] ids, out {k: (t [n_k], G [R, n_k, H, E])}."""
        for k, (ts, g) in out.items():
            for i, t in enumerate(ts):
                directory = self.delay_dir(t, k)
                os.makedirs(directory, exist_ok=True)
                lines = self.pending.setdefault(os.path.join(directory, formats.MAPPING_NAME), [])
                for r, n in enumerate(numbers):
                    atomic_save_npy(os.path.join(directory, f"{n}.npy"), g[r, i].astype(np.float32))
                    lines.append(formats.mapping_line(n, [self.id_to_word[w] for w in words[r, t - k:t + 1]]))

    def flush(self):
        for path, lines in self.pending.items():
            with open(path, "a", encoding="utf-8") as handle:
                handle.writelines(lines)
        self.pending = {}

    def truncate(self, first_unfinished, ts_delays):
        """Drop mapping lines of windows >= first_unfinished (left by an interrupted run)."""
        for t, k in ts_delays:
            path = os.path.join(self.delay_dir(t, k), formats.MAPPING_NAME)
            if not os.path.exists(path):
                continue
            with open(path, encoding="utf-8") as handle:
                lines = handle.readlines()
            keep = [line for line in lines if int(line.split("\t", 1)[0]) < first_unfinished]
            if len(keep) != len(lines):
                atomic_write_text(path, "".join(keep))


def block_path(directory, b):
    return os.path.join(directory, BLOCKS, f"block_{b:03d}.npz")


class GradientBlocks:
    """Per-block sums and counts of a pass over batches [first, stop) of n_batches cut into n_blocks.

    add() is called in batch order; the open block is held in float64 and written (float32 sums)
    when a batch of the next block arrives and at finish().
    """

    def __init__(self, directory, n_batches, n_blocks, first, stop, delays, class_names, shape, norm=None):
        if n_blocks > n_batches:
            raise UserError(f"grad_blocks {n_blocks} for a pass of {n_batches} batches: use at most {n_batches} blocks")
        self.directory, self.n_blocks, self.first, self.stop = directory, n_blocks, first, stop
        self.delays, self.class_names = list(delays), [""] + list(class_names)
        self.ranges = [shard_range(n_batches, b, n_blocks) for b in range(1, n_blocks + 1)]
        self.shape = (len(self.delays), len(self.class_names)) + tuple(shape)
        self.gram_delays = list(self.delays)
        self.gram_shape = (len(self.gram_delays), len(self.class_names), shape[1], shape[1])
        self.norm = None if norm is None else np.asarray(norm, np.float64)
        self.occurrence_shape = (len(self.delays), len(self.class_names), 4 + shape[1]) if norm is not None else None
        self.open, self.sums, self.counts, self.grams = 0, None, None, None   # open block number (1-based; 0 = none)
        self.occurrence = None

    def block_of(self, batch):
        return next(b for b, (lo, hi) in enumerate(self.ranges, 1) if lo <= batch < hi)

    def add(self, batch, sums, counts, grams, occurrence=None):
        """Add (part of) batch `batch`: sums per delay [C, H, E] (any float dtype), counts [D, C], grams [G, C, E, E],
        occurrence [D, C, 4 + E] (with a norm).

        Returns the float64 sums [D, C, H, E] of the block this batch closed (None when none closed).
        """
        b = self.block_of(batch)
        closed = None
        if b != self.open:
            closed = self.finish()
            self.open = b
            self.sums, self.counts = np.zeros(self.shape, np.float64), np.zeros(self.shape[:2], np.float64)
            self.grams = np.zeros(self.gram_shape, np.float64)
            if self.occurrence_shape is not None:
                self.occurrence = np.zeros(self.occurrence_shape, np.float64)
        add_per_delay(self.sums, sums)
        self.counts += counts
        self.grams += grams
        if self.occurrence_shape is not None:
            self.occurrence += occurrence
        return closed

    def finish(self):
        """Write the open block (the part of it inside [first, stop)); returns its float64 sums (None when none is open)."""
        if not self.open:
            return None
        lo, hi = self.ranges[self.open - 1]
        arrays = {"sums": self.sums.astype(np.float32), "counts": self.counts,
                  "grams": pack_grams(self.grams).astype(np.float32),
                  "gram_delays": np.array(self.gram_delays, np.int64), "block": np.int64(self.open),
                  "blocks": np.int64(self.n_blocks), "first_batch": np.int64(max(lo, self.first)),
                  "stop_batch": np.int64(min(hi, self.stop)), "delays": np.array(self.delays, np.int64),
                  "classes": np.array(self.class_names)}
        if self.occurrence_shape is not None:
            arrays.update({"norm": self.norm, "occurrence": self.occurrence})
        write_npz(block_path(self.directory, self.open), arrays)
        closed = self.sums
        self.open, self.sums, self.counts, self.grams, self.occurrence = 0, None, None, None, None
        return closed

    def state(self):
        if not self.open:
            return {"block_open": np.int64(0)}
        extra = {"block_occurrence": self.occurrence} if self.occurrence is not None else {}
        return {"block_open": np.int64(self.open), "block_sums": self.sums, "block_counts": self.counts,
                "block_grams": self.grams, **extra}

    def load(self, arrays):
        self.open = int(arrays["block_open"])
        if self.open:
            self.sums, self.grams = arrays["block_sums"], arrays["block_grams"]
            self.counts = np.asarray(arrays["block_counts"], np.float64)   # int64 in checkpoints before weights
            self.occurrence = arrays.get("block_occurrence")


def add_per_delay(total, sums):
    """total [D, C, H, E] float64 += sums, delay by delay (sums: an array [D, ...] or a list of D arrays, views
    allowed): numpy casts float32 to float64 exactly while it adds, with no [D, C, H, E] temporary."""
    for d, part in enumerate(sums):
        total[d] += part


def pack_grams(grams):
    """[..., E, E] symmetric -> [..., E(E+1)/2]: the upper triangle row by row."""
    rows, cols = np.triu_indices(grams.shape[-1])
    return grams[..., rows, cols]


def unpack_grams(packed):
    """pack_grams's inverse: [..., E(E+1)/2] -> [..., E, E] (float64)."""
    e = int(round((math.sqrt(8 * packed.shape[-1] + 1) - 1) / 2))
    rows, cols = np.triu_indices(e)
    full = np.zeros(packed.shape[:-1] + (e, e), np.float64)
    full[..., rows, cols] = packed
    full[..., cols, rows] = packed
    return full


def write_npz(path, arrays):
    os.makedirs(os.path.dirname(path), exist_ok=True)

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(path, write)


def read_blocks(grad_dir):
    """The complete block files of a pass: list of dicts (numpy arrays) in block order; UserError when absent or partial."""
    folder = os.path.join(grad_dir, BLOCKS)
    names = sorted(n for n in os.listdir(folder) if re.fullmatch(r"block_\d+\.npz", n)) if os.path.isdir(folder) else []
    if not names:
        raise UserError(f"{folder} holds no block files: run the gradient pass with grad_blocks N")
    blocks = []
    for name in names:
        with np.load(os.path.join(folder, name), allow_pickle=False) as f:
            blocks.append({key: f[key] for key in f.files})
    n = int(blocks[0]["blocks"])
    numbers = [int(b["block"]) for b in blocks]
    if numbers != list(range(1, n + 1)) or any(int(b["blocks"]) != n for b in blocks):
        raise UserError(f"{folder} holds blocks {numbers} but not exactly blocks 1..{n} of one split: "
                        "rerun the pass (or the merge) into an empty grad_dir")
    return blocks


class GradientAverages:
    """Running float64 sums of G per delay and class; writes delay_{k}_avg[_{class}].npy and counts.

    With blocks, a window's sums go into the open block only, and a block's float64 sums are added
    to the totals when it closes: one pass over [D, C, H, E] per window instead of two. The totals
    then exclude the open block; finish() adds the last one.
    """

    def __init__(self, directory, delays, class_names, shape, blocks=None):
        self.directory, self.delays, self.class_names = directory, delays, class_names
        self.sums = np.zeros((len(delays), len(class_names) + 1) + tuple(shape), np.float64)
        self.counts = np.zeros((len(delays), len(class_names) + 1), np.float64)   # sums of weights (occurrences)
        self.blocks = blocks        # a GradientBlocks, or None

    def add(self, sums, counts, batch=None, grams=None, occurrence=None):
        """sums per delay [C, H, E] (an array [D, C, H, E] or a list of D arrays, any float dtype; added in
        float64), counts [D, C] of (part of) batch `batch`; with blocks also its grams [G, C, E, E] and
        occurrence sums [D, C, 4 + E]."""
        self.counts += counts
        if self.blocks is None:
            add_per_delay(self.sums, sums)
            return
        closed = self.blocks.add(batch, sums, counts, grams, occurrence)
        if closed is not None:
            self.sums += closed

    def finish(self):
        """Write the open block and add it to the totals (call after the last add)."""
        if self.blocks is not None:
            closed = self.blocks.finish()
            if closed is not None:
                self.sums += closed

    def add_matrices(self, out, masks, delays_index, batch=None):
        """Accumulate dumped matrices out {k: (t [n_k], G [R, n_k, H, E])}: masks [C, R, T] over source positions."""
        if self.blocks is None:       # in place: no [D, C, H, E] temporary per window
            for k, (ts, g) in out.items():
                w = masks[:, :, ts - k]                                        # [C, R, n_k]
                self.sums[delays_index[k]] += np.einsum("crn,rnhe->che", w, g.astype(np.float64))
                self.counts[delays_index[k]] += w.sum(axis=(1, 2))
            return
        sums, counts = np.zeros_like(self.sums), np.zeros_like(self.counts)
        grams = np.zeros(self.blocks.gram_shape, np.float64)
        for k, (ts, g) in out.items():
            w = masks[:, :, ts - k]
            g = g.astype(np.float64)
            sums[delays_index[k]] = np.einsum("crn,rnhe->che", w, g)
            if k in self.blocks.gram_delays:
                grams[self.blocks.gram_delays.index(k)] = np.einsum("crn,rnhe,rnhf->cef", w, g, g, optimize=True)
            counts[delays_index[k]] = w.sum(axis=(1, 2))
        self.add(sums, counts, batch, grams)

    def state(self):
        extra = self.blocks.state() if self.blocks is not None else {}
        # counts include the open block (they are small and added per window), sums do not
        return {"sums": self.sums, "counts": self.counts, "sums_exclude_open_block": np.bool_(True), **extra}

    def load(self, arrays):
        self.sums, self.counts = arrays["sums"], np.asarray(arrays["counts"], np.float64)
        if self.blocks is not None:
            self.blocks.load(arrays)
            if self.blocks.open and "sums_exclude_open_block" not in arrays:
                self.sums = self.sums - self.blocks.sums     # a checkpoint of a pass before this layout

    def write(self, log):
        names = [None] + list(self.class_names)
        for di, k in enumerate(self.delays):
            for ci, cls in enumerate(names):
                count = self.counts[di, ci]
                atomic_write_text(formats.count_path(self.directory, k, cls), formats.count_text(count) + "\n")
                if count:
                    mean = (self.sums[di, ci] / count).astype(np.float32)
                    atomic_save_npy(formats.average_path(self.directory, k, cls), mean)
                else:
                    log(f"Warning: no matrices for delay {k}, class {cls}: no average written")


def read_progress(path):
    """A pass's or shard's grad_progress.json."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _dump_files(root):
    """Relative paths of the per-window .npy files and of the mapping files under a shard folder."""
    npys, mappings = [], []
    for folder, _, files in os.walk(root):
        if not re.search(r"(^|/)delay_\d+$", folder):
            continue
        rel = os.path.relpath(folder, root)
        npys += [os.path.join(rel, f) for f in files if f.endswith(".npy")]
        if formats.MAPPING_NAME in files:
            mappings.append(os.path.join(rel, formats.MAPPING_NAME))
    return npys, mappings


def merge_shards(grad_dir, log=print):
    """Write into grad_dir exactly what one pass writes, from its N complete shards; returns the perplexity.

    Refuses a missing or incomplete shard, shards of different counts, and shards of another
    model, data or setting (fingerprints). Merging again after a complete merge changes nothing.
    """
    root = os.path.join(grad_dir, SHARDS)
    names = sorted(os.listdir(root)) if os.path.isdir(root) else []
    found = {}
    for name in names:
        match = _SHARD_NAME.match(name)
        if match:
            found[(int(match.group(1)), int(match.group(2)))] = os.path.join(root, name)
    if not found:
        raise UserError(f"{root} holds no shard folders (i-of-N): run main.py --shard i/N first")
    counts = sorted({n for _, n in found})
    if len(counts) > 1:
        raise UserError(f"{root} holds shards of {', '.join(map(str, counts))} shards; keep the folders of one split")
    count = counts[0]
    missing = [i for i in range(1, count + 1) if (i, count) not in found]
    if missing:
        raise UserError(f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing in {root}: run main.py "
                        f"--shard i/{count} for them")
    records = []
    for i in range(1, count + 1):
        path = os.path.join(found[(i, count)], PROGRESS_FILE)
        if not os.path.exists(path):
            raise UserError(f"shard {i}/{count} has not started ({path} missing): run main.py --shard {i}/{count}")
        record = read_progress(path)
        if not record.get("complete"):
            raise UserError(f"shard {i}/{count} is incomplete ({record.get('batches_done')} of "
                            f"{record.get('stop_batch', 0) - record.get('first_batch', 0)} batches, {path}): rerun "
                            f"main.py --shard {i}/{count}, it resumes")
        records.append(record)
    fingerprints = {r["fingerprint"] for r in records}
    if len(fingerprints) > 1:
        odd = next(i for i, r in enumerate(records, 1) if r["fingerprint"] != records[0]["fingerprint"])
        raise UserError(f"shard {odd}/{count} comes from a different model, data or setting than shard 1/{count} "
                        "(fingerprints differ): rerun it with the same config")
    fingerprint = records[0]["fingerprint"]
    n_batches = records[0]["batches_total"]
    expected = [shard_range(n_batches, i, count) for i in range(1, count + 1)]
    if [(r["first_batch"], r["stop_batch"]) for r in records] != expected:
        raise UserError(f"the shards in {root} do not cover batches 0..{n_batches - 1} as {count} shards")

    progress_path = os.path.join(grad_dir, PROGRESS_FILE)
    if os.path.exists(progress_path):
        done = read_progress(progress_path)
        if done.get("fingerprint") != fingerprint:
            raise UserError(f"{grad_dir} already holds state gradients of a different model, data or setting "
                            f"({progress_path})")
        if done.get("complete"):
            source = f"merged from {done['merged_shards']} shards" if done.get("merged_shards") else "one process"
            log(f"{grad_dir} already holds the complete pass ({source}); nothing changed")
            return done.get("perplexity")

    mapping_lines = {}
    for i in range(1, count + 1):
        folder = found[(i, count)]
        npys, mappings = _dump_files(folder)
        for rel in npys:                      # moving is cheap and needs no second copy on disk
            target = os.path.join(grad_dir, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(folder, rel), target)
        for rel in mappings:
            with open(os.path.join(folder, rel), encoding="utf-8") as handle:
                mapping_lines.setdefault(rel, []).append(handle.read())
    for rel, parts in mapping_lines.items():  # shards in order = windows in order
        atomic_write_text(os.path.join(grad_dir, rel), "".join(parts))

    first = records[0]
    if first["grad_average"]:
        averages = GradientAverages(grad_dir, first["delays"], first["classes"], tuple(first["matrix_shape"]))
        for i in range(1, count + 1):
            with np.load(os.path.join(found[(i, count)], SHARD_SUMS_FILE), allow_pickle=False) as sums:
                averages.add(sums["sums"], sums["counts"])
        averages.write(log)
        if first.get("grad_blocks"):
            merge_blocks([found[(i, count)] for i in range(1, count + 1)], grad_dir, first["grad_blocks"], n_batches)
    losses = [r["loss_sum"] for r in records]
    perplexity = None if None in losses else math.exp(sum(losses) / (n_batches * first["num_steps"]))
    record = {key: first.get(key) for key in ("fingerprint", "time_steps", "delays", "classes", "config", "grad_blocks")}
    record.update({"batches_done": n_batches, "batches": n_batches, "loss_sum": None if perplexity is None else sum(losses),
                   "complete": True, "perplexity": perplexity, "merged_shards": count})
    atomic_write_text(progress_path, json.dumps(record, indent=1) + "\n")
    log(f"Merged {count} shards ({n_batches} batches) into {grad_dir}")
    return perplexity


def merge_blocks(shard_folders, grad_dir, n_blocks, n_batches):
    """Add the parts of every block that the shards wrote into GRAD_DIR/blocks/block_{b}.npz (sums in float64, then float32)."""
    parts = {}
    for folder in shard_folders:
        for name in sorted(os.listdir(os.path.join(folder, BLOCKS))):
            with np.load(os.path.join(folder, BLOCKS, name), allow_pickle=False) as f:
                parts.setdefault(int(f["block"]), []).append({key: f[key] for key in f.files})
    for b in range(1, n_blocks + 1):
        lo, hi = shard_range(n_batches, b, n_blocks)
        pieces = sorted(parts.get(b, []), key=lambda p: int(p["first_batch"]))
        covered = [(int(p["first_batch"]), int(p["stop_batch"])) for p in pieces]
        if not pieces or covered[0][0] != lo or covered[-1][1] != hi or any(
                a[1] != c[0] for a, c in zip(covered, covered[1:])):
            raise UserError(f"the shards' files of block {b} cover batches {covered}, not [{lo}, {hi}): rerun the "
                            "shards of that range")
        merged = dict(pieces[0])
        merged["sums"] = np.sum([p["sums"].astype(np.float64) for p in pieces], axis=0).astype(np.float32)
        merged["counts"] = np.sum([p["counts"] for p in pieces], axis=0)
        merged["grams"] = np.sum([p["grams"].astype(np.float64) for p in pieces], axis=0).astype(np.float32)
        if "occurrence" in merged:
            merged["occurrence"] = np.sum([p["occurrence"] for p in pieces], axis=0)
        merged["first_batch"], merged["stop_batch"] = np.int64(lo), np.int64(hi)
        write_npz(block_path(grad_dir, b), merged)

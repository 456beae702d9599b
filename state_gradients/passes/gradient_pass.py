"""The validation pass that computes state gradients and feeds the dump and average writers."""
# Shape letters: N windows in the pass, B batch rows, T window length, H state, E embedding,
# D delays, C classes (class 0 = all words, then one per pos_classes file, then one per pos_token_classes file).
#
# One pass over the validation windows, state carried from window to window as in training:
#
#   batch i (rows r) --eval step (float64)--> loss, state for batch i+1
#        |
#        +--engine (entering state held constant)--> {k: G [B, n_k, H, E]}
#                         |                                  |
#                   GradientDump (n = i*B + r)         GradientAverages (float64 sums per delay/class)
#
# Resuming: every `checkpoint_seconds` (and at the end) the writers flush, the running sums
# and loss are saved (0: after every window; otherwise at least CHECKPOINT_SHARE⁻¹ times the
# last save's duration apart, as the sums with blocks are large: about 560 MB, 1-3 s on the
# paper model), and grad_progress.json records how many batches are complete together
# with a fingerprint of everything that determines the output. A rerun with the same config
# finds the file, checks the fingerprint, drops mapping lines of unfinished batches and
# continues with the next batch; .npy files of unfinished batches are simply rewritten.
#
# The carried state is computed in float64 whatever grad_dtype is (the engine's float64 forward
# model, the same weights). Carried in float32, its rounding accumulates over the pass: on a
# 2-layer GRU trained on PTB (E 8, H 12, T 10) the state entering a window drifted 1.3e-6 from
# the float64 one, and the float32 G of layer 1 (a small scale, 3e-3) then differed from the
# float64 reference by 1.6e-5 of the window's largest entry over the 7,375 validation windows,
# while the engine's own float32 error on the same entering states was 7.9e-7. The forward pass costs O(T H (H + V)) per window next
# to the engine's O(T D E H^2), so float64 costs little.
import hashlib
import json
import math
import os
import shutil
import time

import numpy as np
import tensorflow as tf

from state_gradients.core import families, formats, lm_data
from state_gradients.core.cli import progress_bar
from state_gradients.core.errors import UserError
from state_gradients.core.fileio import atomic_write_text
from state_gradients.engine.recurrent import StateGradients
from state_gradients.files.gradient_files import (PROGRESS_FILE, SHARD_SUMS_FILE, SHARDS, STATES_FILE, SUMS_FILE,
                                                  GradientAverages, GradientBlocks, GradientDump, read_progress,
                                                  shard_dir, shard_range, write_npz)
from state_gradients.passes import measure_setup
from state_gradients.training import run_epoch

NPY_HEADER_BYTES = 128
STATE_DTYPE = StateGradients.FORWARD_DTYPE   # of the state carried from window to window (see above)
CHECKPOINT_SHARE = 0.02   # of the pass's time that saving the running sums may take


def free_bytes(path):
    """Free bytes on the file system that holds path (or its nearest existing parent)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return shutil.disk_usage(path).free


def _gb(n):
    return f"{n / 1e9:.2f} GB"


def _fingerprint(config, model, ids, class_table, time_steps, delays, token_files, norm=None):
    h = hashlib.sha256()
    for arr in model.weights_numpy().values():
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(np.ascontiguousarray(ids).tobytes())
    h.update(class_table.tobytes())
    h.update(json.dumps([config.grad_interm, config.grad_layer, config.batch_size, config.num_steps,
                         time_steps, delays, bool(config.grad_dump), bool(config.grad_average),
                         config.grad_dtype, config.pos_class_files(), config.valid_batches,
                         f"carried state {STATE_DTYPE.name}"]
                        # only when set, so that passes from before the key keep their fingerprint
                        + ([f"blocks {config.grad_blocks} with grams at every delay"] if config.grad_blocks else [])
                        + ([f"occurrence measures with D {hashlib.sha256(norm.tobytes()).hexdigest()}"]
                           if norm is not None else [])
                        + ([f"token classes {token_files}"] if token_files else [])).encode())
    return h.hexdigest()


def estimate_bytes(n_windows, time_steps, max_delay, size, emb_size, dump, n_averages, n_blocks=0):
    """Bytes a run writes: per-window matrices + mapping lines, the averages, and n_blocks copies of the sums."""
    total = 0
    if dump:
        pairs = sum(min(max_delay, t + 1) for t in time_steps)
        per_matrix = size * emb_size * 4 + NPY_HEADER_BYTES
        # mapping line: number, word, and k+1 words joined by '-' (about 8 bytes a word)
        mapping = sum(12 + 8 * (k + 2) for t in time_steps for k in range(min(max_delay, t + 1)))
        total += n_windows * (pairs * per_matrix + mapping)
    total += n_averages * (size * emb_size * 4 + NPY_HEADER_BYTES)
    total += n_blocks * n_averages * (size * emb_size + emb_size * (emb_size + 1) // 2) * 4   # sums and grams
    return total


def run_gradient_pass(config, model, corpus, log, checkpoint_seconds=60.0, shard=None):
    """Compute the state gradients of the validation pass and print `Valid Perplexity: X`.

    shard (i, N): compute only the i-th of N contiguous batch ranges, in GRAD_DIR/shards/i-of-N/
    (gradient_files explains the split and the merge); returns None, the perplexity is the merge's.
    """
    model, inputs, targets, engine, class_names, masks_of, fingerprint, norm = _prepare(config, model, corpus)
    batch, steps = config.batch_size, config.num_steps
    n_batches = inputs.shape[0]
    first, stop = (0, n_batches) if shard is None else shard_range(n_batches, *shard)
    time_steps, delays = config.time_steps(), engine.delays
    grad_dir = config.grad_dir if shard is None else shard_dir(config.grad_dir, *shard)
    what = "State gradients" if shard is None else f"Shard {shard[0]}/{shard[1]} (batches {first + 1}-{stop})"

    def folder_of(t):
        return os.path.join(grad_dir, f"timestep_{t}") if config.multi_step else grad_dir

    dump = GradientDump(folder_of, corpus.id_to_word) if config.grad_dump else None
    shape = (model.size, model.embedding_size)
    blocks = (GradientBlocks(grad_dir, n_batches, config.grad_blocks, first, stop, delays, class_names, shape, norm)
              if config.grad_average and config.grad_blocks else None)
    # the output-level Jacobian needs the softmax and the forward-mode tangents of the top layer
    with_labels = norm is not None and model.has_output_layer and engine.mode == "forward"
    averages = GradientAverages(grad_dir, delays, class_names, shape, blocks) if config.grad_average else None
    pairs = [(t, k) for k in delays for t in engine.targets[k]]

    progress_path = os.path.join(grad_dir, PROGRESS_FILE)
    start, loss_sum = first, 0.0
    if os.path.exists(progress_path):
        progress = read_progress(progress_path)
        if progress.get("fingerprint") != fingerprint:
            raise UserError(f"{grad_dir} holds state gradients of a different model, data or setting "
                            f"({progress_path}); remove it or choose another grad_dir")
        # a model without an output layer records no loss (None); its steps add 0.0
        start, loss_sum = first + progress["batches_done"], progress["loss_sum"] or 0.0
        if progress.get("complete"):
            log(f"{what} in {grad_dir} complete ({PROGRESS_FILE}); nothing to compute")
            if shard is None:
                _log_perplexity(log, progress["perplexity"])
            return progress["perplexity"]
        log(f"Resuming {what.lower() if shard is None else what} in {grad_dir} at batch {start + 1} of {n_batches}")

    n_averages = len(delays) * (len(class_names) + 1) if averages else 0
    need = estimate_bytes((stop - start) * batch, time_steps, config.max_delay, model.size,
                          model.embedding_size, dump is not None, n_averages,
                          blocks.n_blocks if blocks else 0)
    free = free_bytes(grad_dir)
    if need > free:
        raise UserError(f"state gradients for {config.path} need about {_gb(need)} in {grad_dir} but only "
                        f"{_gb(free)} are free; set grad_dump False to keep only the averages, "
                        "choose fewer time steps, or free disk space")
    log(f"{what}: {len(time_steps)} time step(s), delays 0..{delays[-1]}, {stop - first} of {n_batches} batches "
        f"of {batch}x{steps}; about {_gb(need)} to write")
    os.makedirs(grad_dir, exist_ok=True)

    if start > first:
        if dump:
            dump.truncate(start * batch, pairs)
        if averages:
            with open(os.path.join(grad_dir, SUMS_FILE), "rb") as handle:
                averages.load(dict(np.load(handle, allow_pickle=False)))

    state_model = engine.forward_model         # float64: the carried state and the loss
    eval_step = _state_step(state_model)
    state = state_model.zero_state(batch)
    states_path = os.path.join(config.grad_dir, SHARDS, STATES_FILE)
    if start and shard is not None and os.path.exists(states_path):
        state = _read_entering_state(states_path, fingerprint, start, state_model)
        log(f"Entering state of batch {start + 1} from {states_path}")
    elif tf.nest.flatten(state):   # (a Transformer's windows carry no state: nothing to replay)
        began = time.perf_counter()
        for i in range(start):  # replay the cheap forward pass to recover the state entering `start`
            _, state = eval_step(inputs[i], targets[i], state)
        if start:
            log(f"Forward pass over the {start} batch(es) before batch {start + 1}: "
                f"{time.perf_counter() - began:.2f} s")

    def checkpoint(done, complete=False, perplexity=None):
        if dump:
            dump.flush()
        if averages:
            write_npz(os.path.join(grad_dir, SUMS_FILE), averages.state())
        record = {"fingerprint": fingerprint, "batches_done": done - first, "batches": n_batches,
                  "loss_sum": loss_sum if model.has_output_layer else None, "complete": complete,
                  "perplexity": perplexity, "time_steps": time_steps, "delays": delays, "classes": class_names,
                  "config": config.path, "grad_blocks": blocks.n_blocks if blocks else None}
        if shard is not None:   # what the merge needs to check and to write the pass's files
            record.update({"shard": list(shard), "first_batch": first, "stop_batch": stop, "batches_total": n_batches,
                           "num_steps": steps, "grad_average": bool(averages),
                           "matrix_shape": [model.size, model.embedding_size]})
        atomic_write_text(progress_path, json.dumps(record, indent=1) + "\n")

    chunk = max(1, config.grad_chunk)
    index = {k: di for di, k in enumerate(delays)}
    last_save, wait = time.monotonic(), checkpoint_seconds
    bar = progress_bar(range(start, stop), total=stop - first, initial=start - first, unit="window",
                       desc="state gradients")
    for i in bar:
        for r0 in range(0, batch, chunk):
            rows = slice(r0, min(batch, r0 + chunk))
            sub_state = tuple(tuple(s[rows] for s in layer) for layer in state)
            masks = masks_of(i, rows)                                      # [C, R, T]
            if dump:
                out, _ = engine.jacobians(inputs[i, rows], sub_state)
                dump.write(np.arange(rows.start, rows.stop) + i * batch, inputs[i, rows], out)
                if averages:
                    averages.add_matrices(out, masks, index, i)
            else:
                # grams (for the magnitude of G.D) and the occurrence measures only feed the blocks' intervals
                sums, grams, counts, _, occurrence = engine.class_moments(
                    inputs[i, rows], sub_state, masks, blocks.gram_delays if blocks else (), stacked=False,
                    norm=norm, labels=targets[i, rows] if with_labels else None)
                averages.add(sums, counts, i, grams, occurrence)
        cost, state = eval_step(inputs[i], targets[i], state)
        loss_sum += float(cost)
        if time.monotonic() - last_save > wait and i + 1 < stop:
            began_save = time.monotonic()
            checkpoint(i + 1)
            last_save = time.monotonic()
            if checkpoint_seconds > 0:
                wait = max(checkpoint_seconds, (last_save - began_save) / CHECKPOINT_SHARE)

    # a shard has no perplexity of its own (the merge computes it) and keeps its sums for the merge
    perplexity = None
    if shard is None and model.has_output_layer:
        perplexity = math.exp(loss_sum / (n_batches * steps))
    if averages:
        averages.finish()                 # the last block: written, and added to the totals
    if averages and shard is None:
        averages.write(log)
    elif averages:
        write_npz(os.path.join(grad_dir, SHARD_SUMS_FILE), averages.state())
    checkpoint(stop, complete=True, perplexity=perplexity)
    if averages:  # the averages (or a shard's sums) are written; the running sums only served resuming
        os.remove(os.path.join(grad_dir, SUMS_FILE))
    if shard is None:
        _log_perplexity(log, perplexity)
    else:
        log(f"{what} complete in {grad_dir}; merge all {shard[1]} shards with sg-merge-gradients {config.grad_dir}")
    return perplexity


def _prepare(config, model, corpus):
    """What a pass, a shard and a states file share: the model in grad_dtype, the windows, engine, classes, fingerprint,
    the occurrence measures' D (None without grad_norm_file)."""
    dtype = tf.float64 if config.grad_dtype == "float64" else tf.float32
    if model.dtype != dtype:
        model = model.copy(dtype)
    inputs, targets = lm_data.make_windows(corpus.valid, config.batch_size, config.num_steps,
                                           what=corpus.describe("valid"), max_windows=config.valid_batches)
    engine = make_engine(model, layer=config.grad_layer, interm=config.grad_interm, time_steps=config.time_steps(),
                         max_delay=config.max_delay, num_steps=config.num_steps)
    class_names, type_table, token_table = class_tables(config, corpus.id_to_word, len(corpus.valid),
                                                        average=config.grad_average)
    positions = None
    if token_table.shape[1]:
        positions, _ = lm_data.make_windows(np.arange(len(corpus.valid)), config.batch_size, config.num_steps,
                                            max_windows=config.valid_batches)

    def masks_of(i, rows):
        """[C, R, T] class masks of batch i's rows."""
        masks = type_table[:, inputs[i, rows]]
        if positions is None:
            return masks
        return np.concatenate([masks, token_table[1:, positions[i, rows]]])

    norm = read_norm(config, model.embedding_size)
    fingerprint = _fingerprint(config, model, corpus.valid, np.concatenate([type_table.ravel(), token_table.ravel()]),
                               config.time_steps(), engine.delays,
                               config.pos_class_files("pos_token_classes") if config.grad_average else [], norm)
    return model, inputs, targets, engine, class_names, masks_of, fingerprint, norm


def class_tables(config, id_to_word, n_valid, average=True):
    """The classes of a config: (names [C - 1], type_table [C, V] over the word ids of id_to_word, class 0 all words,
    then one row per pos_classes file; token_table [1 + C_tok, n_valid] over the validation data's positions, row 0
    unused, then one row per pos_token_classes file, or [1, 0] without). A token's masks are its word's type_table
    column and its position's token_table rows after the first. average False: class 0 alone."""
    type_files = config.pos_class_files() if average else []
    token_files = config.pos_class_files("pos_token_classes") if average else []
    class_names = [formats.class_name(p) for p in type_files + token_files]
    repeated = sorted({n for n in class_names if class_names.count(n) > 1})
    if repeated:
        raise UserError(f"{config.path}: class name(s) {', '.join(repeated)} occur twice in pos_classes and "
                        "pos_token_classes; every class needs its own file name (its averages are named after it)")
    type_table = formats.class_masks(config.pos_mapping, type_files, id_to_word)
    token_table = np.ones((1, 0))
    if token_files:
        token_tags = formats.read_token_tags(config.pos_tokens, lm_data.data_file(config, "valid"),
                                             eos=not config.no_eos, encoding=config.encoding)
        if len(token_tags) != n_valid:
            raise UserError(f"{config.pos_tokens} tags {len(token_tags)} tokens but the validation data has "
                            f"{n_valid}")
        token_table = formats.token_class_masks(token_tags, token_files)
    return class_names, type_table, token_table


def read_norm(config, embedding_size):
    """The E x E float64 D of config.grad_norm_file (None without the key); UserError naming the key and file."""
    path = config.grad_norm_file
    if path is None:
        return None
    try:
        norm = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"{config.path}: grad_norm_file {path}: not a readable .npy file ({err})") from None
    if norm.shape != (embedding_size, embedding_size) or not np.isfinite(norm).all():
        raise UserError(f"{config.path}: grad_norm_file {path} holds a {norm.shape} array; the model's embedding "
                        f"size needs a finite {embedding_size} x {embedding_size} D")
    return np.asarray(norm, np.float64)


def make_engine(model, *, layer, interm, time_steps, max_delay, num_steps):
    """The state-gradient engine of a model's family (core/families.py): StateGradients for a recurrent cell,
    TransformerStateGradients for a Transformer."""
    family = families.family(model.cell_type)
    return family.engine_class()(model, layer=layer, component=family.state_index(interm), time_steps=time_steps,
                                 max_delay=max_delay, num_steps=num_steps)


def entering_states(model, inputs, targets):
    """The state entering every batch of a pass, carried in STATE_DTYPE from zeros as the gradient pass carries it.

    model: any dtype (its weights are copied to STATE_DTYPE); inputs, targets [N, B, T] ->
    {f"layer{l}_{c}": [N, B, H] numpy} for layer l and state component c.
    """
    state_model = model if model.dtype == STATE_DTYPE else model.copy(STATE_DTYPE)
    step = _state_step(state_model)
    state = state_model.zero_state(inputs.shape[1])
    entering = []
    for i in range(inputs.shape[0]):
        entering.append([[s.numpy() for s in layer] for layer in state])
        _, state = step(inputs[i], targets[i], state)
    return {f"layer{l}_{c}": np.stack([e[l][c] for e in entering])
            for l in range(model.num_layers) for c in range(len(model.cell.state_names))}


def write_entering_states(config, model, corpus, log):
    """--states-only: one forward pass writing the state entering every batch to GRAD_DIR/shards/states.npz.

    Shards then start from it instead of replaying the batches before them; the states are the
    ones the single pass carries (the same step function), so the output does not change.
    """
    _, inputs, targets, engine, _, _, fingerprint, _ = _prepare(config, model, corpus)
    began = time.perf_counter()
    arrays = entering_states(engine.forward_model, inputs, targets)
    path = os.path.join(config.grad_dir, SHARDS, STATES_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_npz(path, {"fingerprint": np.array(fingerprint), **arrays})
    log(f"Wrote the state entering each of {inputs.shape[0]} batches to {path} "
        f"({time.perf_counter() - began:.2f} s)")
    return path


def _read_entering_state(path, fingerprint, batch_index, model):
    with np.load(path, allow_pickle=False) as f:
        if str(f["fingerprint"]) != fingerprint:
            raise UserError(f"{path} holds the states of a different model, data or setting; remove it or rerun "
                            "main.py --states-only")
        return tuple(tuple(tf.constant(f[f"layer{l}_{c}"][batch_index], model.dtype)
                           for c in range(len(model.cell.state_names))) for l in range(model.num_layers))


def _state_step(model):
    """(inputs, targets, state) -> (cost, next state): the evaluation step, or only the state without an output layer."""
    if model.has_output_layer:
        return run_epoch.make_eval_step(model)
    forward = measure_setup.make_forward_step(model)

    def step(inputs, targets, state):
        del targets
        return 0.0, forward(inputs, state)[1]

    return step


def _log_perplexity(log, perplexity):
    if perplexity is None:
        log("No validation perplexity: the model has no output layer")
    else:
        log(f"Valid Perplexity: {perplexity!r}")

"""Behavioural memory: how a model's state and loss change when a past word is replaced or its context cut."""
# Shape letters: R rows (occurrences or targets), K inputs run, E embedding, H state, V vocabulary,
# C classes (0: all words), N blocks, D delays (or context lengths).
#
# Khandelwal, He, Qi and Jurafsky ("Sharp Nearby, Fuzzy Far Away", ACL 2018) asked what a
# language model does with its past by perturbing the context at evaluation time only. Their
# perturbations, computed here on the windows, targets, classes and blocks of a gradient pass
# (batch_size 1, so that the validation text is one stream of positions p = i T + t):
#
#   replacement  the word at t - k is replaced by a word drawn from the training unigram
#                distribution, and by one drawn from the unigram distribution of its own class;
#                a recurrent model runs from the state entering t - k (the pass's carried state)
#                to t with the new word, a Transformer reads its window with the new word.
#                Measured: ‖Δs_t‖ (the chosen state), the loss change at t (predicting the word
#                at t + 1), and the gradient's own prediction G·Δx (forward mode, the same run),
#                both state sizes in units of ‖D⁻¹Δx‖ so that they compare with the SV sums of
#                G·D (D from grad_norm_file); and the sizes apart (‖Δs_t‖, ‖D⁻¹Δx‖, ‖Δx‖).
#   truncation   the loss at target p when the model reads only the last d words, minus the loss
#                with the whole history: a recurrent model from a zero state d tokens back, across
#                window boundaries (inputs p - d + 1 .. p), against the pass's carried state; a
#                Transformer its window's words t - d + 1 .. t at positions 0 .. d - 1 (as a window
#                of its own, the positions it was trained on), against the window's first t + 1
#                words. Targets with p >= d_max - 1 (a Transformer's t >= d_max - 1) only, so that
#                every d has the same targets.
#   word order   against the longest context: its words beyond distance d shuffled or reversed;
#   dropping     its content words, function words or as many random words beyond d left out (a
#                recurrent model skips their steps; a Transformer attends to none of them, and the
#                kept words take positions 0, 1, ... as if the dropped ones were never there).
#
# Every quantity is summed per class of the replaced word (replacement) or of the target word
# (truncation), per delay or context length and per block of the text (the gradient pass's
# blocks), so that its mean has the delete-one-block jackknife's interval. TensorFlow is imported
# inside the functions that run the model: sg-perturb --help needs none of it.
import dataclasses

import numpy as np


def _states(model, x, state, keep=None):
    """All layers' states for inputs x [R, K, E] from `state`: per layer, per component [R, K, H]."""
    return model.run_layers(x, state, keep=keep)


_GRAPHS = {}


def _graph(fn, static_shapes=False):
    """fn as a tf.function, so that the steps run as one compiled loop instead of op by op from Python: traced
    once per model and input rank (reduce_retracing), or with static_shapes once per input shape (a function
    whose loop is written out needs its length)."""
    import tensorflow as tf

    if (fn, static_shapes) not in _GRAPHS:
        _GRAPHS[fn, static_shapes] = tf.function(fn, reduce_retracing=not static_shapes, autograph=not static_shapes)
    return _GRAPHS[fn, static_shapes]


def _stateful(model):
    from state_gradients.core import families

    return families.family(model.cell_type).stateful


def _unrolled_top(model, x, state, layer, component):
    """(s_t of `layer`'s `component`, the top layer's h at t) of a recurrent model after inputs x [R, K, E] from
    `state`, the steps written out (K is small: a replaced word's delay): forward-mode accumulation through them
    compiles, while it does not through tf.scan's loop."""
    import tensorflow as tf

    chosen = None
    for number in range(model.num_layers):
        p = model.layers[number]
        w_h = model.cell.recurrent_weights(p, model.size)
        shape = tf.shape(x)
        xw = tf.reshape(model.cell.project_input(p, tf.reshape(x, [-1, shape[2]])), [shape[0], shape[1], -1])
        s, outputs = tuple(state[number]), []
        for step in range(x.shape[1]):
            s = model.cell.step(p, xw[:, step], s, w_h)[0]
            outputs.append(s[-1])
        if number == layer:
            chosen = s[component]
        x = tf.stack(outputs, axis=1)
    return chosen, x[:, -1]


def _measured(model, x, state, layer, component, at):
    """(s_t [R, H], the top output at t [R, H]) with t = at [R]: a recurrent model's last step (at is K - 1), a
    Transformer's residual stream after block `layer` (component 0) or the final LayerNorm's output (1) at t."""
    import tensorflow as tf

    if _stateful(model):
        return _unrolled_top(model, x, state, layer, component)
    streams = model.run_layers(x)
    top = tf.gather(streams[-1][0], at, batch_dims=1)
    chosen = model.final_norm(top) if component == 1 else tf.gather(streams[layer][0], at, batch_dims=1)
    return chosen, top


def _perturb_graph(model, state, ids, position, delta_x, at, targets, layer, component):
    import tensorflow as tf

    x = model.embed(ids)
    tangent = tf.one_hot(position, tf.shape(ids)[1], dtype=x.dtype)[:, :, None] * delta_x[:, None]
    with tf.autodiff.ForwardAccumulator(x, tangent) as acc:
        s_t, top = _measured(model, x, state, layer, component, at)
    predicted = acc.jvp(s_t)
    s_new, top_new = _measured(model, x + tangent, state, layer, component, at)
    before = model.token_losses(top[:, None], targets[:, None])[:, 0]
    after = model.token_losses(top_new[:, None], targets[:, None])[:, 0]
    return s_new - s_t, predicted, after - before


def perturb_input(model, state, ids, delta_x, *, layer, component, position=None, at=None, targets=None):
    """The effect on s_t of adding delta_x to the input embedding at `position`, and its first-order prediction.

    Args:
        model: a LanguageModel or TransformerLM (any dtype; the arithmetic runs in its dtype).
        state: the state entering the first input (per layer, per component [R, H]; a Transformer's is ()).
        ids [R, K]: the inputs; a recurrent model's are x_{t-k} .. x_t (the changed word first, t last), a
            Transformer's a window from its first word.
        delta_x [R, E]: the change of the input embedding at `position`.
        layer, component: the state s_t measured (grad_layer and the index of grad_interm's state).
        position, at [R]: the changed input and t (a Transformer's; a recurrent model's are 0 and K - 1).
        targets [R]: the word at t + 1, for the loss change (None: not computed).

    Returns:
        dict of float64 numpy arrays: delta_state [R, H] = s'_t - s_t, predicted [R, H] = G·Δx with
        G = d s_t / d x_position (forward mode along the original inputs), delta_x [R, E], and with
        targets delta_loss [R] (cross entropy at t after the change minus before).
    """
    import tensorflow as tf

    ids = np.asarray(ids)
    rows, steps = ids.shape
    position = np.zeros(rows, np.int32) if position is None else np.asarray(position, np.int32)
    at = np.full(rows, steps - 1, np.int32) if at is None else np.asarray(at, np.int32)
    labels = np.zeros(rows, np.int32) if targets is None else np.asarray(targets, np.int32)
    # a recurrent model's steps are written out (static shapes); a Transformer's run at once (retraced per rank)
    delta_state, predicted, delta_loss = _graph(_perturb_graph, static_shapes=_stateful(model))(
        model, state, tf.constant(ids, tf.int32), tf.constant(position), tf.constant(delta_x, model.dtype),
        tf.constant(at), tf.constant(labels), layer, component)
    out = {"delta_state": delta_state, "predicted": predicted, "delta_x": delta_x}
    if targets is not None:
        out["delta_loss"] = delta_loss
    return {name: np.asarray(value, np.float64) for name, value in out.items()}


def replacement_effects(model, state, ids, new, *, layer, component, position=None, at=None, targets=None):
    """perturb_input with the word at `position` (default the first) replaced by new [R] (Δx = x(new) - x(old))."""
    embedding = np.asarray(model.embedding, np.float64)
    ids = np.asarray(ids)
    old = ids[:, 0] if position is None else ids[np.arange(len(ids)), np.asarray(position)]
    delta_x = embedding[np.asarray(new)] - embedding[old]
    return perturb_input(model, state, ids, delta_x, layer=layer, component=component, position=position, at=at,
                         targets=targets)


def _losses_graph(model, contexts, keep, targets):
    import tensorflow as tf

    states = _states(model, model.embed(contexts), model.zero_state(tf.shape(contexts)[0]), keep)
    return model.token_losses(states[-1][-1][:, -1:], targets[:, None])[:, 0]


def kept_context_losses(model, contexts, keep, targets):
    """Cross entropy [R] of targets [R] after reading contexts [R, L] from a zero state (a Transformer: as a window
    of its own, positions from 0) with the words where keep [R, L] is False dropped (context_losses of each row's
    kept words; the last word is kept)."""
    import tensorflow as tf

    losses = _graph(_losses_graph)(model, tf.constant(contexts, tf.int32), tf.constant(np.asarray(keep, bool)),
                                   tf.constant(np.asarray(targets, np.int32)))
    return np.asarray(losses, np.float64)


def context_losses(model, contexts, targets):
    """Cross entropy [R] of targets [R] after reading contexts [R, d] from a zero state (a truncated history; a
    Transformer reads them as a window of its own, positions from 0)."""
    return kept_context_losses(model, contexts, np.ones(np.shape(contexts), bool), targets)


def stream_losses(model, stream, state=None):
    """Cross entropy [P - 1] at every position p of stream [P] (predicting stream[p + 1]) with the whole history
    from `state` (default zeros; a Transformer reads the stream as one window), and the states after every
    position (per layer, per component [P, H])."""
    import tensorflow as tf

    stream = np.asarray(stream)
    if state is None:
        state = model.zero_state(1)
    states = _states(model, model.embed(tf.constant(stream[None, :-1], tf.int32)), state)
    losses = model.token_losses(states[-1][-1], tf.constant(stream[None, 1:], tf.int32))[0]
    return np.asarray(losses, np.float64), [[np.asarray(s[0]) for s in layer] for layer in states]


def reorder_far(contexts, d, how, rng):
    """contexts [R, L] with the words beyond distance d (all but the last d) shuffled (each row its own
    permutation) or reversed; the last d words stay in place."""
    out = np.array(contexts, copy=True)
    far = out.shape[1] - d
    for row in out:
        row[:far] = row[:far][::-1] if how == "reversed" else rng.permutation(row[:far])
    return out


# --------------------------------------------------------------------------------------------
# Sums per class, delay and block
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class BlockSums:
    """Running sums and counts of quantities per block, delay and class: sums[name], counts[name] [N, D, C] (a
    quantity that is NaN for a row, e.g. not defined at that delay, does not count)."""
    names: tuple
    n_blocks: int
    delays: tuple
    n_classes: int

    def __post_init__(self):
        shape = (self.n_blocks, len(self.delays), self.n_classes)
        self.sums = {name: np.zeros(shape) for name in self.names}
        self.counts = {name: np.zeros(shape) for name in self.names}

    def add(self, block, delay, masks, values):
        """masks [C, R] (0/1 or weights) of the rows' classes; values {name: [R]}."""
        d = self.delays.index(delay)
        masks = np.asarray(masks, np.float64)
        for name in self.names:
            value = np.asarray(values[name], np.float64)
            finite = np.isfinite(value)
            self.counts[name][block, d] += masks[:, finite].sum(axis=1)
            self.sums[name][block, d] += masks[:, finite] @ value[finite]

    def means(self, name):
        """(mean [D, C] on all blocks, leave-one-block-out means [N, D, C], block counts [N, D, C]); NaN where a
        class has no occurrence."""
        sums, counts = self.sums[name], self.counts[name]
        total, count = sums.sum(axis=0), counts.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / count, (total[None] - sums) / (count[None] - counts), counts

    def intervals(self, name):
        """uncertainty.jackknife of each class mean (no bias correction: a mean is unbiased) per delay and class:
        {value, estimate, se, lo, hi, df} [D, C]. Blocks without an occurrence of the class are left out (their
        delete-one replicate is the mean itself and carries no information); a class with occurrences in one block
        only has no interval (NaN)."""
        from state_gradients.measures import uncertainty

        full, loo, counts = self.means(name)
        keys = ("value", "estimate", "se", "lo", "hi", "df")
        out = {key: np.full(full.shape, np.nan) for key in keys}
        for d, c in np.ndindex(full.shape):
            used = counts[:, d, c] > 0
            if used.sum() < 2:
                out["value"][d, c] = out["estimate"][d, c] = full[d, c]
                continue
            stats = uncertainty.jackknife(full[d, c], loo[used, d, c], counts[used, d, c], exponent=None)
            for key in keys:
                out[key][d, c] = stats[key]
        return out

    def state(self):
        return {**{f"count_{name}": value for name, value in self.counts.items()},
                **{f"sum_{name}": value for name, value in self.sums.items()}}

    def load(self, arrays):
        self.counts = {name: np.array(arrays[f"count_{name}"], np.float64) for name in self.names}
        self.sums = {name: np.array(arrays[f"sum_{name}"], np.float64) for name in self.names}


# --------------------------------------------------------------------------------------------
# The pass
# --------------------------------------------------------------------------------------------

REPLACEMENT = ("replacement_state", "replacement_predicted", "replacement_loss")
SAME_CLASS = ("same_class_state", "same_class_predicted", "same_class_loss")
SIZES = ("replacement_state_raw", "replacement_input", "replacement_input_raw")
REPLACED = REPLACEMENT + SAME_CLASS + SIZES            # the measures per delay k of the replaced word
TRUNCATION = ("truncation_loss", "order_shuffled", "order_reversed", "drop_content", "drop_function", "drop_random")
MEASURES = {
    "replacement_state": "‖Δs_t‖ / ‖D⁻¹Δx‖ when the word at t − k is replaced by a unigram draw",
    "replacement_predicted": "‖G·Δx‖ / ‖D⁻¹Δx‖, the state gradient's first-order prediction of the same change",
    "replacement_loss": "loss change at t when the word at t − k is replaced by a unigram draw",
    "same_class_state": "‖Δs_t‖ / ‖D⁻¹Δx‖ when the word at t − k is replaced by a unigram draw of its own class",
    "same_class_predicted": "‖G·Δx‖ / ‖D⁻¹Δx‖ for the same-class replacement",
    "same_class_loss": "loss change at t when the word at t − k is replaced by a unigram draw of its own class",
    "replacement_state_raw": "‖Δs_t‖ of the unigram replacement, not divided by the input's change",
    "replacement_input": "‖D⁻¹Δx‖ of the unigram replacement (the normalised size of the input's change)",
    "replacement_input_raw": "‖Δx‖ of the unigram replacement (the embedding's change, not normalised)",
    "truncation_loss": "loss increase at t when only the last d words are read (from a zero state)",
    "order_shuffled": "loss increase when the words beyond distance d of the longest context are shuffled",
    "order_reversed": "loss increase when the words beyond distance d of the longest context are reversed",
    "drop_content": "loss increase when the content words beyond distance d of the longest context are dropped",
    "drop_function": "loss increase when the function words beyond distance d of the longest context are dropped",
    "drop_random": "loss increase when as many random words beyond distance d as there are content words are dropped",
}
CSV_COLUMNS = ["measure", "class", "delay", "count", "value", "se", "lo", "hi"]
# the parts of a window's work that sg-perturb times: the window's own forward pass, the unigram replacements, the
# same-class ones, the truncated contexts, and the word-order and dropping variants
PARTS = ("forward", "replacement", "same_class", "truncation", "rearranged")


@dataclasses.dataclass
class PerturbOptions:
    """What sg-perturb measures: delays k of the replaced word (each < max_delay, <= the window's last target),
    context lengths d of the truncation, target positions sampled per window and delay (None: every target of the
    gradient pass's time steps), how many of those targets get the word-order and dropping variants (each d
    reads the longest context five times), the seed of the samples and replacement words, and the classes (pos_classes
    names) whose words count as content and as function words when words are dropped (a word in both is
    content; a word in neither is never dropped) and whose words a same-class replacement draws from (a word's
    first class among content then function; a word in none gets no same-class replacement)."""
    delays: tuple = (0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 40)
    contexts: tuple = (1, 2, 3, 5, 10, 20, 50, 100, 200)
    targets_per_window: int | None = 20
    rearranged_per_window: int = 4
    seed: int = 0
    content: tuple = ("nouns", "verbs", "adjectives", "adverbs")
    function: tuple = ("determiners", "prepositions", "pronouns", "conjunctions")


@dataclasses.dataclass
class PerturbResult:
    """sums: BlockSums of every measure (names REPLACED and TRUNCATION), classes [C] ("overall" first), delays
    and contexts as measured, windows [N] of the pass, blocks; units: what ‖D⁻¹Δx‖ was (D or the identity); seconds
    and measured: the time of each part (PARTS) over the windows this run measured."""
    sums_replacement: BlockSums
    sums_truncation: BlockSums
    classes: list
    windows: int
    blocks: int
    units: str
    seconds: dict = dataclasses.field(default_factory=dict)   # PARTS -> seconds, the windows this run measured
    measured: int = 0                                          # how many windows this run measured (not resumed)

    def rows(self):
        """perturbation.csv's rows: every measure, class and delay (or context length) with a count."""
        out = []
        for sums in (self.sums_replacement, self.sums_truncation):
            for name in sums.names:
                stats = sums.intervals(name)
                counts = sums.counts[name].sum(axis=0)
                for d, delay in enumerate(sums.delays):
                    for c, cls in enumerate(self.classes):
                        if counts[d, c] > 0:
                            out.append([name, cls, delay, counts[d, c]] + [float(stats[key][d, c])
                                                                          for key in ("value", "se", "lo", "hi")])
        return out


def _unigram(train_ids, vocab_size):
    counts = np.bincount(np.asarray(train_ids), minlength=vocab_size).astype(np.float64)
    return counts / counts.sum()


def class_pools(unigram, table):
    """Each word's main class among table's rows [C', V] (the largest weight, the first on a tie; -1: in none) and,
    per class, the unigram distribution restricted to the words whose main class it is: (main [V], pools [C', V])."""
    if not len(table):                       # no content or function classes: no same-class replacement
        return np.full(len(unigram), -1), np.zeros((0, len(unigram)))
    main = np.where(table.max(axis=0) > 0, table.argmax(axis=0), -1)
    pools = np.stack([np.where(main == c, unigram, 0.0) for c in range(len(table))])
    totals = pools.sum(axis=1, keepdims=True)
    return main, np.divide(pools, totals, out=np.zeros_like(pools), where=totals > 0)


def _draw_other(rng, probabilities, original):
    """A word from `probabilities` ([V] for all, or [R, V] one row per word) for each original word, redrawn until
    it differs (Δx = 0 measures nothing); the caller keeps a row's distribution from holding its word alone."""
    probabilities, original = np.asarray(probabilities), np.asarray(original)
    vocab = probabilities.shape[-1]

    def draw(rows):
        if probabilities.ndim == 1:
            return rng.choice(vocab, size=len(rows), p=probabilities)
        cumulative = np.cumsum(probabilities[rows], axis=1)
        u = rng.random(len(rows)) * cumulative[:, -1]
        return np.minimum((cumulative < u[:, None]).sum(axis=1), vocab - 1)   # the first word whose sum reaches u

    new = draw(np.arange(len(original)))
    same = new == original
    while same.any():
        new[same] = draw(np.flatnonzero(same))
        same = new == original
    return new


def _replacement_values(effect, z_inv, prefix):
    """(‖D⁻¹Δx‖ [R], the per-row measures of one replacement: ‖Δs‖ and ‖G·Δx‖ per unit ‖D⁻¹Δx‖, and the loss
    change)."""
    size = np.linalg.norm(effect["delta_x"] @ z_inv.T, axis=1)                          # ‖D⁻¹Δx‖
    return size, {f"{prefix}_state": np.linalg.norm(effect["delta_state"], axis=1) / size,
                  f"{prefix}_predicted": np.linalg.norm(effect["predicted"], axis=1) / size,
                  f"{prefix}_loss": effect["delta_loss"]}


def measure_window(model, window, targets, entering, *, layer, component, z_inv, delays, contexts, stream, offset,
                   time_steps, unigram, pools, masks_of, kinds, rng, rng_class, sample, rearranged, seconds=None):
    """One window's replacement and truncation values, [(measure group, delay, masks [C, R], {name: [R]})], and
    the state entering the next window.

    window, targets [T]: the window's inputs and next words; entering: the carried state entering it; stream: the
    pass's whole input stream (a recurrent model's contexts reach back across windows; a Transformer's stay in its
    window), offset: the window's first position; pools: class_pools (the same-class draws); masks_of(ids [R],
    positions [R]): the class masks [C, R] of the words ids at stream positions; kinds: ([V] content words, [V]
    function words) as booleans; rng_class: the same-class draws' generator (apart, so that the other
    draws do not depend on them); rearranged: how many of the sampled truncation targets get the word-order and
    dropping variants; seconds: a dict to which each part's time is added (PARTS).
    """
    import time

    import tensorflow as tf

    seconds = {} if seconds is None else seconds
    clock = [time.perf_counter()]

    def lap(part):
        now = time.perf_counter()
        seconds[part] = seconds.get(part, 0.0) + now - clock[0]
        clock[0] = now

    stateful = _stateful(model)
    x = model.embed(tf.constant(window[None], tf.int32))
    states = _graph(_states)(model, x, entering)          # compiled: an eager scan costs more than the window's work
    losses = np.asarray(model.token_losses(states[-1][-1], tf.constant(targets[None], tf.int32))[0], np.float64)
    main, pool = pools
    out = []
    lap("forward")
    for k in delays:
        ts = sample(np.array([t for t in time_steps if t >= k]))
        if not len(ts):
            continue
        if stateful:      # from the carried state entering t - k, the inputs t - k .. t
            starts = ts - k
            state = tuple(tuple(tf.gather(tf.concat([tf.expand_dims(e, 1), s], axis=1)[0], starts) for e, s in
                                zip(entering_layer, layer_states))
                          for entering_layer, layer_states in zip(entering, states))
            ids = np.stack([window[j:j + k + 1] for j in starts])
            where = {}
        else:             # the whole window, the word at t - k changed, s read at t
            state, ids = model.zero_state(len(ts)), np.repeat(window[None], len(ts), axis=0)
            where = {"position": ts - k, "at": ts}
        old = window[ts - k]
        measure = {"layer": layer, "component": component, "targets": targets[ts], **where}
        effect = replacement_effects(model, state, ids, _draw_other(rng, unigram, old), **measure)
        size, values = _replacement_values(effect, z_inv, "replacement")
        values.update({"replacement_state_raw": np.linalg.norm(effect["delta_state"], axis=1),
                       "replacement_input": size, "replacement_input_raw": np.linalg.norm(effect["delta_x"], axis=1)})
        lap("replacement")
        # a draw of the replaced word's own class, for rows whose word has a class with another word in it; the
        # other rows run with their unigram draw and count as NaN (every call has the same rows: no retracing)
        drawable = main[old] >= 0
        if drawable.any():
            drawable &= (pool[np.maximum(main[old], 0)] > 0).sum(axis=1) > 1
        if drawable.any():
            new = np.where(old == 0, 1, 0)                 # any other word for the rows left out
            new[drawable] = _draw_other(rng_class, pool[main[old[drawable]]], old[drawable])
            effect = replacement_effects(model, state, ids, new, **measure)
            values.update({name: np.where(drawable, value, np.nan)
                           for name, value in _replacement_values(effect, z_inv, "same_class")[1].items()})
        else:
            values.update({name: np.full(len(ts), np.nan) for name in SAME_CLASS})
        out.append(("replacement", k, masks_of(old, offset + ts - k), values))
        lap("same_class")
    longest = max(contexts) if contexts else 0
    # the history a context is cut from: a recurrent model's whole stream, a Transformer's window
    history, origin = (stream, offset) if stateful else (window, 0)
    ts = sample(np.array([t for t in time_steps if origin + t >= longest - 1]))
    if len(ts) and contexts:
        positions = origin + ts
        masks = masks_of(targets[ts], offset + ts + 1)
        cut = {d: context_losses(model, np.stack([history[p - d + 1:p + 1] for p in positions]), targets[ts])
               for d in contexts}
        # every measure at every d; the rearranged ones are NaN (not counted) beyond the first `rearranged` targets
        # and at the longest d, which they are measured against
        by_d = {d: {name: np.full(len(ts), np.nan) for name in TRUNCATION} for d in contexts}
        for d in contexts:
            by_d[d]["truncation_loss"] = cut[d] - losses[ts]
        lap("truncation")
        # word order and dropping on the first `rearranged` targets, against the longest context as it is: every
        # variant of every d in one batch (a dropped word is a step the recurrence skips, a position attention skips)
        few = slice(0, rearranged)
        # without content (function) classes there is nothing to drop: those variants are not measured, not 0
        unmeasured = ({"drop_content", "drop_random"} if not kinds[0].any() else set()) | (
            {"drop_function"} if not kinds[1].any() else set())
        base = np.stack([history[p - longest + 1:p + 1] for p in positions[few]])          # [R', L]
        rows, keeps, labels, where = [], [], [], []
        for d in (d for d in contexts if d < longest):
            far = np.arange(longest) < longest - d
            content, function = far & kinds[0][base], far & kinds[1][base]
            random = np.zeros_like(content)
            for r, n in enumerate(content.sum(axis=1)):
                random[r, rng.choice(longest - d, n, replace=False)] = True
            keep_all = np.ones_like(content)
            for name, ctx, keep in (("order_shuffled", reorder_far(base, d, "shuffled", rng), keep_all),
                                    ("order_reversed", reorder_far(base, d, "reversed", rng), keep_all),
                                    ("drop_content", base, ~content), ("drop_function", base, ~function),
                                    ("drop_random", base, ~random)):
                if name in unmeasured:
                    continue
                rows.append(ctx)
                keeps.append(keep)
                labels.append(targets[ts][few])
                where.append((d, name))
        if rows:
            got = kept_context_losses(model, np.concatenate(rows), np.concatenate(keeps), np.concatenate(labels))
            got = got.reshape(len(rows), -1) - cut[longest][few]
            for (d, name), increase in zip(where, got):
                by_d[d][name][few] = increase
        out += [("truncation", d, masks, values) for d, values in by_d.items()]
        lap("rearranged")
    return out, model.final_state(states)


def _fingerprint(config, options, stream, table, n_blocks):
    import hashlib
    import json

    # the measures' names too: a progress file of a version with other measures holds other sums
    digest = hashlib.sha256(json.dumps([config.save_path, config.num_steps, config.valid_batches, config.grad_layer,
                                        config.grad_interm, config.time_step, config.grad_norm_file, n_blocks,
                                        dataclasses.asdict(options), REPLACED, TRUNCATION],
                                       sort_keys=True, default=str).encode())
    digest.update(np.ascontiguousarray(stream).tobytes())
    digest.update(np.ascontiguousarray(table).tobytes())
    return digest.hexdigest()


PROGRESS = "perturbation_progress.npz"


def run_perturbation(config_path, out, options=PerturbOptions(), log=print, checkpoint_seconds=60.0):
    """The replacement and truncation measures on the windows, targets, classes and blocks of a gradient config.

    config_path: a gradient-pass config (batch_size 1; pos_mapping and pos_classes give the classes,
    grad_blocks the blocks, grad_norm_file the D of ‖D⁻¹Δx‖, time_step the targets, valid_batches the
    windows). Resumes from OUT/perturbation_progress.npz (the same config and options). Returns a
    PerturbResult; write_outputs writes its files.
    """
    import tensorflow as tf

    import os
    import time

    from state_gradients.core import configuration, families, formats, lm_data
    from state_gradients.core.cli import progress_bar
    from state_gradients.core.errors import UserError
    from state_gradients.files.gradient_files import shard_range, write_npz
    from state_gradients.files.saved_model import SavedModel
    from state_gradients.passes.gradient_pass import class_tables, read_norm

    config = configuration.load_config(config_path, train=False, valid=True, test=False)
    if config.batch_size != 1:
        raise UserError(f"{config.path}: batch_size must be 1 for sg-perturb (one stream of validation positions, "
                        f"as sg-reproduce's gradient pass reads it), got {config.batch_size}")
    source = SavedModel.from_config(config)
    model = source.load(tf.float64)
    corpus = lm_data.load_corpus(config, need_train=True, need_valid=True, need_test=False)
    inputs, targets = lm_data.make_windows(source.ids(corpus, "valid"), 1, config.num_steps,
                                           what=corpus.describe("valid"), max_windows=config.valid_batches)
    n_windows, steps = inputs.shape[0], config.num_steps
    stream = inputs[:, 0].reshape(-1)
    time_steps = np.array(config.time_steps())
    delays = tuple(k for k in options.delays if k <= time_steps.max())
    bad = [k for k in options.delays if k >= steps or k < 0]
    if bad:
        raise UserError(f"--delays {bad}: a replaced word must lie in the window of {steps} (0 <= k < num_steps)")
    # a recurrent model reads a truncated context across window boundaries, a Transformer within its window
    reach, what = (len(stream), "the pass's positions") if _stateful(model) else \
        (steps, "a Transformer's context lies in its window, num_steps")
    if options.contexts and (min(options.contexts) < 1 or max(options.contexts) > reach):
        raise UserError(f"--contexts must lie in 1..{reach} ({what}), got {list(options.contexts)}")
    names, table, token_table = class_tables(config, source.id_to_word, len(corpus.valid))
    classes = [formats.OVERALL] + names
    type_classes = classes[:len(table)]
    missing = sorted(set(options.content + options.function) - set(type_classes))
    if missing:
        raise UserError(f"{config.path}: pos_classes has no class {', '.join(missing)} (the content and function "
                        f"words that sg-perturb drops, and whose classes its same-class replacements keep); its "
                        f"classes: {', '.join(type_classes[1:]) or 'none'} (name them with --content and "
                        "--function, or give '' for none)")
    kinds = tuple(table[[classes.index(c) for c in group]].max(axis=0) > 0 if group else
                  np.zeros(table.shape[1], bool) for group in (options.content, options.function))
    kinds = (kinds[0], kinds[1] & ~kinds[0])         # a word with a content tag is content

    def masks_of(ids, positions):
        """[C, R]: the classes of words ids at positions of the validation data (its word's, then its token's)."""
        if not token_table.shape[1]:
            return table[:, ids]
        return np.concatenate([table[:, ids], token_table[1:, positions]])
    layer, component = config.grad_layer, families.family(model.cell_type).state_index(config.grad_interm)
    norm = read_norm(config, model.embedding_size)
    units = "D of grad_norm_file" if norm is not None else "the identity (no grad_norm_file): ‖Δx‖"
    z_inv = np.linalg.inv(norm) if norm is not None else np.eye(model.embedding_size)
    n_blocks = config.grad_blocks or 1
    if n_blocks > n_windows:
        raise UserError(f"{config.line_of('grad_blocks')}: grad_blocks {n_blocks} for a pass of {n_windows} windows: "
                        f"use at most {n_windows} blocks")
    ranges = [shard_range(n_windows, b, n_blocks) for b in range(1, n_blocks + 1)]
    block_of = np.concatenate([np.full(hi - lo, b) for b, (lo, hi) in enumerate(ranges)])
    replacement = BlockSums(REPLACED, n_blocks, delays, len(classes))
    truncation = BlockSums(TRUNCATION, n_blocks, tuple(options.contexts), len(classes))
    unigram = _unigram(source.ids(corpus, "train"), model.vocab_size)
    pools = class_pools(unigram, table[[classes.index(c) for c in options.content + options.function]])
    fingerprint = _fingerprint(config, options, stream, np.concatenate([table.ravel(), token_table.ravel()]),
                               n_blocks)
    progress_path = os.path.join(out, PROGRESS)
    start = 0
    if os.path.isfile(progress_path):
        with np.load(progress_path, allow_pickle=False) as saved:
            if str(saved["fingerprint"]) != fingerprint:
                raise UserError(f"{progress_path} holds another model, config or options; remove it or choose "
                                "another --out")
            start = int(saved["windows_done"])
            replacement.load({k[len("r_"):]: saved[k] for k in saved.files if k.startswith("r_")})
            truncation.load({k[len("t_"):]: saved[k] for k in saved.files if k.startswith("t_")})
        log(f"sg-perturb in {out}: complete ({PROGRESS})" if start == n_windows else
            f"Resuming sg-perturb in {out} at window {start + 1} of {n_windows}")
    os.makedirs(out, exist_ok=True)
    state = model.zero_state(1)
    for i in range(start if start < n_windows else 0):      # replay the forward pass to the state entering `start`
        state = model.final_state(_graph(_states)(model, model.embed(tf.constant(inputs[i], tf.int32)), state))

    def save(done):
        write_npz(progress_path, {"fingerprint": np.array(fingerprint), "windows_done": np.array(done),
                                  **{f"r_{k}": v for k, v in replacement.state().items()},
                                  **{f"t_{k}": v for k, v in truncation.state().items()}})

    last, seconds = time.monotonic(), {}
    for i in progress_bar(range(start, n_windows), total=n_windows, initial=start, unit="window", desc="perturb"):
        rng = np.random.default_rng([options.seed, i])       # per window: the same draws after a resume
        rng_class = np.random.default_rng([options.seed, i, 1])

        def sample(ts, rng=rng):
            if options.targets_per_window is None or len(ts) <= options.targets_per_window:
                return ts
            return np.sort(rng.choice(ts, options.targets_per_window, replace=False))

        parts, state = measure_window(model, inputs[i, 0], targets[i, 0], state, layer=layer, component=component,
                                      z_inv=z_inv, delays=delays, contexts=tuple(options.contexts), stream=stream,
                                      offset=i * steps, time_steps=time_steps, unigram=unigram, pools=pools,
                                      masks_of=masks_of, kinds=kinds, rng=rng, rng_class=rng_class, sample=sample,
                                      rearranged=options.rearranged_per_window, seconds=seconds)
        for group, delay, masks, values in parts:
            (replacement if group == "replacement" else truncation).add(block_of[i], delay, masks, values)
        if time.monotonic() - last > checkpoint_seconds:
            save(i + 1)
            last = time.monotonic()
    save(n_windows)
    return PerturbResult(replacement, truncation, classes, n_windows, n_blocks, units, seconds, n_windows - start)


REPLICATE_COLUMNS = ["measure", "class", "delay", "block", "block_count", "loo"]
CSV_NAME, REPLICATES_NAME = "perturbation.csv", "perturbation_replicates.csv"


def write_outputs(result, out):
    """OUT/perturbation.csv (CSV_COLUMNS: each measure's class means per delay or context length with the
    delete-one-block jackknife's 95% interval) and OUT/perturbation_replicates.csv (REPLICATE_COLUMNS: the mean
    without block j, and block j's count, for the statistics of several measures, e.g. rank correlations with
    the gradient measures over the same blocks); returns the two paths."""
    import os

    from state_gradients.core.fileio import atomic_write_text, table_csv

    rows = [[r[0], r[1], r[2], f"{r[3]:g}"] + [repr(float(v)) for v in r[4:]] for r in result.rows()]
    replicates = []
    for sums in (result.sums_replacement, result.sums_truncation):
        for name in sums.names:
            _, loo, counts = sums.means(name)
            total = counts.sum(axis=0)
            for d, delay in enumerate(sums.delays):
                for c, cls in enumerate(result.classes):
                    if total[d, c] > 0:
                        replicates += [[name, cls, delay, j, f"{counts[j, d, c]:g}", repr(float(loo[j, d, c]))]
                                       for j in range(sums.n_blocks)]
    paths = os.path.join(out, CSV_NAME), os.path.join(out, REPLICATES_NAME)
    atomic_write_text(paths[1], table_csv(replicates, REPLICATE_COLUMNS))
    atomic_write_text(paths[0], table_csv(rows, CSV_COLUMNS))
    return paths


def read_outputs(folder):
    """(perturbation.csv's rows, perturbation_replicates.csv's rows) of an sg-perturb folder as dicts, numbers as
    float (delay and block as int); None when the folder has no perturbation.csv. UserError naming file and line."""
    import csv
    import os

    from state_gradients.core.errors import UserError

    def read(path, columns):
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = set(columns) - set(reader.fieldnames or [])
            if missing:
                raise UserError(f"{path}: missing column(s) {', '.join(sorted(missing))} (expected sg-perturb's CSV)")
            out = []
            for lineno, row in enumerate(reader, start=2):
                try:
                    out.append({k: v if k in ("measure", "class") else int(v) if k in ("delay", "block") else float(v)
                                for k, v in row.items()})
                except ValueError:
                    raise UserError(f"{path} line {lineno}: a value is not a number") from None
            return out

    path = os.path.join(folder, CSV_NAME)
    if not os.path.isfile(path):
        return None
    return read(path, CSV_COLUMNS), read(os.path.join(folder, REPLICATES_NAME), REPLICATE_COLUMNS)

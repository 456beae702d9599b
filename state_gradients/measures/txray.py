"""TX-Ray neuron-feature distributions: which tokens and POS tags make each unit most active, compared across models."""
# Shape letters: N tokens, H state units, K top-k, F features, V vocabulary (token features),
# P POS features (the tags of the mapping plus UNTAGGED), B batch rows, T time steps,
# R streams (= B: a pass feeds B rows, each a stream), L tokens per stream, S compared tags.
#
# After Rethmeier, Kumar Saxena and Augenstein, "TX-Ray" (UAI 2020). For every input token the
# top-k units of the chosen state "activate" on the token's features; a unit's knowledge is the
# distribution of activation mass over the features it activated on, and two models' units are
# compared by the Hellinger distance of those distributions.
#
# Activation rule (one rule for every cell and state, tanh-bounded h or unbounded LSTM c): the
# k units with the LARGEST SIGNED values win, ties to the lower index, and a winner adds its
# value to (unit, feature) only when that value is > 0. A unit that is among the top k with a
# value <= 0 is not active: its "maximum" carries no positive evidence, and negative mass would
# not make a distribution.
#
# Memory (our extension, --separate): the same winners against the POS tags of the word k steps
# back, summarised per delay as I(unit; tag) / H(tag) with a shuffled-tag chance level, a
# permutation p-value and a span (see separation_rows).
import csv
import dataclasses
import io
import os

import numpy as np

from state_gradients.core.cli import progress_bar
from state_gradients.core.errors import UserError
from state_gradients.files.saved_model import SavedModel
from state_gradients.measures import analysis
from state_gradients.passes import measure_setup  # TensorFlow only once a model is built
from state_gradients.plots import figure, palette

UNTAGGED = "UNTAGGED"
DATA_SETS = ("valid", "test", "train")
FEATURE_KINDS = ("token", "pos")
PLURAL = {"token": "tokens", "pos": "pos"}   # column names: distinct_tokens_a, distinct_pos_a
TOP_IN_CSV = 5        # features listed per unit in the CSV
TOP_IN_PLOT = 8       # bars per panel of PREFIX_top_units.png
UNITS_IN_PLOT = 3     # most and least changed units shown
SPAN_ALPHA = 0.05     # significance level of the separation span
CHANCE_DRAWS = 99     # shuffles behind a separation's chance level and p-value (smallest p: 0.01)


# --------------------------------------------------------------------------------------------
# Distributions and distances (numpy)
# --------------------------------------------------------------------------------------------

def _winners(activations, top_k):
    """(units [N, K], values [N, K]) of the k largest activations per token (stable: ties to the lower unit)."""
    activations = np.asarray(activations)
    if activations.ndim != 2:
        raise ValueError(f"activations must be [N, H], got shape {activations.shape}")
    if not 1 <= top_k <= activations.shape[1]:
        raise ValueError(f"top-k must be between 1 and the state size {activations.shape[1]}, got {top_k}")
    units = np.argsort(-activations, axis=1, kind="stable")[:, :top_k]
    return units, np.take_along_axis(activations, units, axis=1)


def unit_feature_distributions(activations, features, n_features, top_k=1):
    """Activation mass [H, F]: each token's top-k units add their (positive) value at (unit, token's feature).

    activations [N, H], features [N] integer ids < n_features. Un-normalised; see normalise().
    """
    units, values = _winners(activations, top_k)
    return mass_from_winners(units, values, features, n_features, np.asarray(activations).shape[1])


def mass_from_winners(units, values, features, n_features, n_units):
    """Activation mass [H, F] from the winners (units, values) [N, K] of N tokens with features [N]."""
    features, units, values = np.asarray(features).reshape(-1), np.asarray(units), np.asarray(values)
    if features.shape[0] != units.shape[0]:
        raise ValueError(f"{units.shape[0]} activation rows but {features.shape[0]} features")
    active = values > 0
    flat = units[active] * n_features + np.broadcast_to(features[:, None], units.shape)[active]
    mass = np.bincount(flat, weights=values[active].astype(np.float64), minlength=n_units * n_features)
    return mass.reshape(n_units, n_features)


def unit_token_counts(activations, top_k=1):
    """[H] number of tokens on which each unit was active (among the top k with a value > 0)."""
    units, values = _winners(activations, top_k)
    return np.bincount(units[values > 0], minlength=np.asarray(activations).shape[1])


def normalise(mass):
    """Rows of mass [H, F] divided by their sums; a row without mass becomes NaN (no distribution)."""
    mass = np.asarray(mass, dtype=np.float64)
    totals = mass.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, mass / totals, np.nan)


def hellinger(p, q):
    """sqrt(1 - sum sqrt(p q)) = ||sqrt p - sqrt q|| / sqrt 2 over the last axis; NaN where p or q is NaN.

    Computed in the norm form, which is exactly 0 for identical rows (the other form leaves
    rounding noise of about 1e-8 after the square root).
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    return np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2, axis=-1) / 2.0)


def distance_matrix(p, q):
    """[H_A, H_B] Hellinger distances between every row of p [H_A, F] and every row of q [H_B, F]."""
    root_p, root_q = np.sqrt(np.asarray(p, np.float64)), np.sqrt(np.asarray(q, np.float64))
    affinity = root_p @ root_q.T            # Bhattacharyya coefficients; NaN rows stay NaN
    return np.sqrt(np.clip(1.0 - affinity, 0.0, 1.0))


def match_units(distances):
    """Hungarian pairing minimising the summed distance: partner [H_A], A unit i <-> B unit partner[i].

    Undefined (NaN) distances cost 1, the largest possible distance.
    """
    from scipy.optimize import linear_sum_assignment

    cost = np.where(np.isnan(distances), 1.0, distances)
    rows, cols = linear_sum_assignment(cost)
    partner = np.empty(cost.shape[0], dtype=np.int64)
    partner[rows] = cols
    return partner


def unit_distances(p, q, partner=None):
    """[H] Hellinger distance of unit i of p to unit partner[i] of q (default: the same index)."""
    q = np.asarray(q) if partner is None else np.asarray(q)[partner]
    return hellinger(p, q)


def word_feature_matrix(id_to_word, pos_mapping):
    """(W [V, P], tag names): word v spreads 1 equally over its tags; words without tags go to UNTAGGED."""
    tags = sorted({tag for word in id_to_word for tag in pos_mapping.get(word, ())}) + [UNTAGGED]
    column = {tag: i for i, tag in enumerate(tags)}
    weights = np.zeros((len(id_to_word), len(tags)))
    for v, word in enumerate(id_to_word):
        word_tags = pos_mapping.get(word) or {UNTAGGED}
        for tag in word_tags:
            weights[v, column[tag]] = 1.0 / len(word_tags)
    return weights, tags


def top_features(distribution, names, n):
    """[(name, probability)] of the n most probable features with probability > 0 (empty for NaN)."""
    if np.isnan(distribution).any():
        return []
    order = np.argsort(-distribution, kind="stable")[:n]
    return [(names[i], float(distribution[i])) for i in order if distribution[i] > 0]


def normalised_mutual_information(joint):
    """I(U; F) / H(F) of a joint mass [H, F] (any positive scale); NaN without mass or with one feature.

    U is the active unit, F the feature. 0: which unit fires says nothing about the feature;
    1: every unit's mass lies on a single feature, so the units separate the features.
    """
    joint = np.asarray(joint, dtype=np.float64)
    total = joint.sum()
    if not total > 0:
        return float("nan")
    joint = joint / total
    p_unit, p_feature = joint.sum(axis=1), joint.sum(axis=0)
    seen = p_feature > 0
    entropy = -np.sum(p_feature[seen] * np.log(p_feature[seen]))
    if entropy <= 0:
        return float("nan")
    nonzero = joint > 0
    expected = np.outer(p_unit, p_feature)
    return float(np.sum(joint[nonzero] * np.log(joint[nonzero] / expected[nonzero])) / entropy)


def delayed_tokens(units, values, stream_ids, tag_weights, delay):
    """(units [N, K], values [N, K], tags [N, S]): the winners at t of the N tokens whose word at t - delay is tagged.

    units, values [R, L, K]: the top-k winners of R streams (batch rows) of L tokens; stream_ids
    [R, L] the fed word ids; tag_weights [V, S] each word's share of the S compared tags. Tokens
    whose word at t - delay has none of the tags, or lies before its stream's start, are left out.
    """
    top_k, n_tags = units.shape[-1], tag_weights.shape[1]
    back = stream_ids[:, :max(stream_ids.shape[1] - delay, 0)]                  # word at t - delay
    tags = tag_weights[back].reshape(-1, n_tags)
    units, values = units[:, delay:].reshape(-1, top_k), values[:, delay:].reshape(-1, top_k)   # state at t
    keep = tags.sum(axis=1) > 0
    return units[keep], values[keep], tags[keep]


def tag_joint(units, values, tags, n_units):
    """Joint mass [H, S]: each token's active winners add their value times the token's tag shares."""
    active = values > 0
    return np.stack([np.bincount(units[active], weights=(values * tags[:, [s]])[active], minlength=n_units)
                     for s in range(tags.shape[1])], axis=1)


def separation_rows(units, values, stream_ids, tag_weights, tag_names, tag_sets, max_delay, n_units,
                    draws=CHANCE_DRAWS):
    """Per tag set and delay k = 0..max_delay-1 (max_delay: the number of delays): {tags, delay, tokens,
    separation, chance, p}.

    separation = normalised_mutual_information of the tag_joint of the delayed_tokens; chance =
    its mean over `draws` seeded shuffles of the tags among the same tokens (the estimate's
    small-sample bias); p = (1 + shuffles at least as large) / (1 + draws), a one-sided
    permutation test.
    """
    rows = []
    for set_index, tags in enumerate(tag_sets):
        # a tag that no corpus word has is a column of zeros
        weights = np.stack([tag_weights[:, tag_names.index(t)] if t in tag_names else np.zeros(len(tag_weights))
                            for t in tags], axis=1)
        for delay in range(max_delay):
            kept_units, kept_values, kept_tags = delayed_tokens(units, values, stream_ids, weights, delay)
            tokens = len(kept_tags)
            observed = normalised_mutual_information(tag_joint(kept_units, kept_values, kept_tags, n_units))
            rng = np.random.default_rng([set_index, delay])
            chance = np.array([normalised_mutual_information(
                tag_joint(kept_units, kept_values, kept_tags[rng.permutation(tokens)], n_units))
                for _ in range(draws)] if tokens else [float("nan")])
            p = (1 + np.sum(chance >= observed)) / (1 + draws) if np.isfinite(observed) else float("nan")
            rows.append({"tags": ",".join(tags), "delay": delay, "tokens": tokens, "separation": observed,
                         "chance": float(np.mean(chance)), "p": float(p)})
    return rows


# --------------------------------------------------------------------------------------------
# Running models (TensorFlow)
# --------------------------------------------------------------------------------------------

def collect_winners(model, batches, lookup, layer, component, top_k=1, desc=None):
    """(units, values) [R, L, K]: the top-k units of the state at every token of the R streams.

    batches: [R, T] arrays of corpus ids in pass order, the state carried across them (R batch
    rows = R streams, L = the summed T); lookup [V] maps corpus ids to the model's ids.
    """
    step = measure_setup.make_forward_step(model)
    state = model.zero_state(batches[0].shape[0])
    units, values = [], []
    for inputs in progress_bar(batches, desc=desc, unit="batch", leave=False):
        all_states, state = step(lookup[inputs], state)
        states = all_states[layer][component]
        winners, top = _winners(states.numpy().reshape(-1, model.size), top_k)
        units.append(winners.astype(np.int32).reshape(inputs.shape + (top_k,)))
        values.append(top.reshape(inputs.shape + (top_k,)))
    return np.concatenate(units, axis=1), np.concatenate(values, axis=1)


def stream_mass(units, values, streams, n_features, n_units):
    """(mass [H, F], active-token counts [H]) of the winners [R, L, K] of streams [R, L] of feature ids."""
    top_k = units.shape[-1]
    mass = mass_from_winners(units.reshape(-1, top_k), values.reshape(-1, top_k), streams, n_features, n_units)
    return mass, np.bincount(units[values > 0], minlength=n_units)


def collect_unit_mass(model, batches, lookup, layer, component, top_k=1, desc=None):
    """(token mass [H, V], active-token counts [H]) over batches of corpus ids, the state carried across them.

    The features are the corpus ids, so models with different vocabularies share feature indices.
    """
    units, values = collect_winners(model, batches, lookup, layer, component, top_k, desc)
    return stream_mass(units, values, np.concatenate(batches, axis=1), len(lookup), model.size)


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------

def _number(x):
    return "nan" if np.isnan(x) else f"{x:.6g}"


def _feature_list(distribution, names, n=TOP_IN_CSV):
    return " ".join(f"{name}:{p:.3f}" for name, p in top_features(distribution, names, n))


def units_csv(result):
    """The PREFIX_units.csv text: one row per unit of model A (and its partner in B)."""
    kinds, two = result.kinds, result.b is not None
    sides = ("a", "b") if two else ("a",)
    header = ["unit"] + (["unit_b"] if two else [])
    header += [f"n_tokens_{s}" for s in sides] + [f"mass_{s}" for s in sides]
    header += [f"distinct_{PLURAL[kind]}_{s}" for kind in kinds for s in sides]
    if two:
        header += [f"hellinger_{kind}" for kind in kinds]
    header += [f"top_{PLURAL[kind]}_{s}" for kind in kinds for s in sides]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    a, b = result.a, result.b
    for i in range(len(a.counts)):
        picks = [(a, i)] + ([(b, int(result.partner[i]))] if two else [])   # (model, unit) per side
        row = [i] + [unit for _, unit in picks[1:]]
        row += [int(side.counts[unit]) for side, unit in picks]
        row += [_number(side.mass["token"][unit].sum()) for side, unit in picks]
        row += [int((side.mass[kind][unit] > 0).sum()) for kind in kinds for side, unit in picks]
        if two:
            row += [_number(result.distances[kind][i]) for kind in kinds]
        row += [_feature_list(side.dist[kind][unit], result.names[kind]) for kind in kinds
                for side, unit in picks]
        writer.writerow(row)
    return buffer.getvalue()


def _stats(values):
    defined = values[~np.isnan(values)]
    if not len(defined):
        return "no unit with both distributions defined"
    return (f"mean {defined.mean():.4f}, median {np.median(defined):.4f}, min {defined.min():.4f}, "
            f"max {defined.max():.4f} over {len(defined)} units")


def summary_text(result):
    """PREFIX_summary.txt: what was compared and the distance statistics."""
    a, b, kinds = result.a, result.b, result.kinds
    lines = ["TX-Ray neuron-feature distributions (Rethmeier et al., UAI 2020)"]
    for label, side in (("A", a), ("B", b)):
        if side is not None:
            lines.append(f"model {label}: {side.source} ({side.cell}, H={len(side.counts)}, "
                         f"layer {result.layer}, state {side.state}); corpus words missing from its "
                         f"vocabulary (read as unk): {side.missing}")
    lines.append(f"data: {result.data} ({result.tokens} tokens in {result.batching} batches, state carried, "
                 "no dropout)")
    lines.append(f"activation: the top {result.top_k} unit(s) per token by signed value, counted when > 0; "
                 "mass = the activation value")
    for kind in kinds:
        lines.append(f"features {kind}: {len(result.names[kind])}"
                     + (f" (POS tags of {result.pos_mapping} plus {UNTAGGED}; a word with several tags "
                        "splits its mass equally)" if kind == "pos" else " (corpus vocabulary)"))
    for label, side in (("A", a), ("B", b)):
        if side is not None:
            idle = np.flatnonzero(side.counts == 0)
            listed = ", ".join(map(str, idle[:20])) + (" ..." if len(idle) > 20 else "")
            lines.append(f"units never active in {label}: {len(idle)}" + (f" ({listed})" if len(idle) else ""))
    if b is not None:
        undefined = int(np.isnan(result.distances[kinds[0]]).sum())
        lines.append(f"unit pairs with a distance of NaN (a unit never active): {undefined}")
        if result.matched:
            moved = int((result.partner != np.arange(len(result.partner))).sum())
            lines.append(f"pairing: Hungarian matching on the {kinds[0]}-distribution distances ({moved} units "
                         "paired with another index); unit i of A and unit_b of B in the CSV")
        else:
            lines.append("pairing: by unit index (unit i of A with unit i of B; for independently trained "
                         "models use --match)")
        for kind in kinds:
            lines.append(f"hellinger {kind}: {_stats(result.distances[kind])}")
            if result.matched:
                lines.append(f"hellinger {kind} by index, before matching: {_stats(result.by_index[kind])}")
        ranking = result.distances[kinds[0]]
        most, least = _extreme_units(ranking)
        lines.append(f"most changed units ({kinds[0]}): " + ", ".join(f"{i} ({ranking[i]:.3f})" for i in most))
        lines.append(f"least changed units ({kinds[0]}): " + ", ".join(f"{i} ({ranking[i]:.3f})" for i in least))
    if result.tag_sets:
        lines += _separation_lines(result)
    return "\n".join(lines) + "\n"


def separation_csv(result):
    """PREFIX_separation.csv: tags, delay, tokens, then separation and chance per model."""
    sides = [s for s in ("a", "b") if getattr(result, s) is not None]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["tags", "delay", "tokens"] + [f"{what}_{s}" for s in sides for what in ("separation", "chance", "p")])
    for i, row in enumerate(result.a.separation):
        writer.writerow([row["tags"], row["delay"], row["tokens"]]
                        + [_number(getattr(result, s).separation[i][what]) for s in sides
                           for what in ("separation", "chance", "p")])
    return buffer.getvalue()


def _separation_lines(result):
    lines = [f"separation of POS tags of the word k = 0..{result.max_delay - 1} steps back: I(unit; tag) / H(tag) "
             "over the tokens whose word at t - k has one of the tags, the units' activation mass as weights "
             f"(0: the unit says nothing, 1: every unit fires for one tag); chance = mean over {CHANCE_DRAWS} "
             "shuffles of the tags, p = the share of shuffles at least as large; span = the largest k such that "
             "p < 0.05 at every delay 0..k (-1: not even at k = 0)"]
    for label, side in (("A", result.a), ("B", result.b)):
        if side is None:
            continue
        for tags in dict.fromkeys(r["tags"] for r in side.separation):
            rows = [r for r in side.separation if r["tags"] == tags]
            lines.append(f"separation {tags}, model {label}, k = 0..: "
                         + " ".join(_number(round(r["separation"], 3)) for r in rows)
                         + "; chance: " + " ".join(_number(round(r["chance"], 3)) for r in rows)
                         + f"; span {separation_span(rows)}")
    return lines


def separation_span(rows, alpha=SPAN_ALPHA):
    """Largest delay k with p < alpha at every delay 0..k of one tag set's rows (sorted by delay); -1 if none."""
    span = -1
    for row in rows:
        if not row["p"] < alpha:
            break
        span = row["delay"]
    return span


def plot_separation(result, path=None):
    """Separation against delay, one panel per tag set: A solid, B dashed, chance dotted."""
    tag_sets = [",".join(tags) for tags in result.tag_sets]
    fig = figure.new_figure(5.0 * len(tag_sets), 4.0)
    axes = fig.subplots(1, len(tag_sets), squeeze=False)[0]
    for ax, tags in zip(axes, tag_sets):
        for label, side, style in (("A", result.a, "-"), ("B", result.b, "--")):
            if side is None:
                continue
            rows = [r for r in side.separation if r["tags"] == tags]
            delays = [r["delay"] for r in rows]
            colour = palette.color(tags)     # the tag set's colour, as in every figure
            ax.plot(delays, [r["separation"] for r in rows], style, color=colour, marker="o", label=f"model {label}")
            ax.plot(delays, [r["chance"] for r in rows], ":", color=colour, alpha=0.7, label=f"model {label}, chance")
        ax.set_xlabel("delay k (word at t - k)")
        ax.set_ylabel("I(unit; tag) / H(tag)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"units separating {tags}", fontsize="small")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    if path:
        figure.save_png(fig, dpi=100, path=path)
    return fig


def _extreme_units(distances, n=UNITS_IN_PLOT):
    """(most changed, least changed) unit indices among those with a defined distance."""
    defined = np.flatnonzero(~np.isnan(distances))
    order = defined[np.argsort(-distances[defined], kind="stable")]
    most = order[:n]
    least = [i for i in order[::-1][:n] if i not in most]
    return list(most), least


def plot_distance_vs_features(result, path=None):
    """Hellinger distance per unit against its number of distinct features (A and B), one panel per kind."""
    kinds = result.kinds
    fig = figure.new_figure(5.5 * len(kinds), 4.5)
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    a, b, partner = result.a, result.b, result.partner
    for ax, kind in zip(axes, kinds):
        d = result.distances[kind]
        ax.scatter((a.mass[kind] > 0).sum(1), d, s=14, alpha=0.7, label="distinct features in A")
        ax.scatter((b.mass[kind][partner] > 0).sum(1), d, s=14, alpha=0.7, marker="x",
                   label="distinct features in B")
        if kind == "token" and (a.mass[kind] > 0).sum(1).max() >= 100:
            ax.set_xscale("log")   # a few broad units would squeeze the many narrow ones into a corner
        ax.set_xlabel(f"distinct {kind} features of the unit")
        ax.set_ylabel(f"Hellinger distance ({kind})")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("TX-Ray: change of each unit vs the breadth of its features"
                 + (" (matched units)" if result.matched else ""))
    fig.tight_layout()
    if path:
        figure.save_png(fig, dpi=100, path=path)
    return fig


def plot_top_units(result, path=None):
    """Bar charts of the top features of the most and least changed units (or the most active ones)."""
    a, b, kinds = result.a, result.b, result.kinds
    if b is None:
        order = np.argsort(-a.counts, kind="stable")
        rows = [(i, i, "most active") for i in order[:2 * UNITS_IN_PLOT] if a.counts[i] > 0]
        sides = [("A", a)]
    else:
        most, least = _extreme_units(result.distances[kinds[0]])
        rows = ([(i, int(result.partner[i]), "most changed") for i in most]
                + [(i, int(result.partner[i]), "least changed") for i in least])
        sides = [("A", a), ("B", b)]
    columns = [(kind, label, side) for kind in kinds for label, side in sides]
    fig = figure.new_figure(3.6 * len(columns), 2.2 * max(len(rows), 1) + 0.6)
    if not rows:
        fig.text(0.5, 0.5, "no unit was active", ha="center")
    axes = fig.subplots(max(len(rows), 1), len(columns), squeeze=False)
    for r, (i, j, what) in enumerate(rows):
        for c, (kind, label, side) in enumerate(columns):
            ax = axes[r, c]
            unit = i if label == "A" else j
            top = top_features(side.dist[kind][unit], result.names[kind], TOP_IN_PLOT)
            ax.barh(range(len(top)), [p for _, p in top], color="C0" if label == "A" else "C1")
            ax.set_yticks(range(len(top)), [name for name, _ in top], fontsize="small")
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            title = f"{what}: {label} unit {unit}, {kind}"
            if b is not None:
                title += f"\nHellinger {result.distances[kind][i]:.3f}"
            ax.set_title(title, fontsize="small")
    fig.tight_layout()
    if path:
        figure.save_png(fig, dpi=100, path=path)
    return fig


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _features(text):
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in FEATURE_KINDS]
    if bad or not kinds:
        raise UserError(f"--features must list token and/or pos, got {text!r}")
    return [k for k in FEATURE_KINDS if k in kinds]


def _tag_sets(args, pos_mapping, pos_mapping_path):
    """The --separate tag lists, checked against the mapping's tags; [] when none is asked for."""
    if not args.separate:
        if args.max_delay is not None:
            raise UserError("--max-delay needs --separate TAGS")
        return []
    if pos_mapping is None:
        raise UserError("--separate needs POS features: give --features with pos and a POS mapping")
    known = sorted(set().union(*pos_mapping.values()))
    sets = []
    for text in args.separate:
        tags = [t.strip() for t in text.split(",") if t.strip()]
        if len(set(tags)) < 2 or len(set(tags)) != len(tags):
            raise UserError(f"--separate needs two or more different comma-separated tags, got {text!r}")
        unknown = [t for t in tags if t not in known]
        if unknown:
            raise UserError(f"--separate {text}: tag {unknown[0]!r} is not in {pos_mapping_path} "
                            f"(its tags: {' '.join(known)})")
        sets.append(tags)
    return sets


@dataclasses.dataclass
class TxrayOptions:
    """The settings of one run (the CLI's flags); None: the config's value or measure_setup's default."""
    config_b: str | None = None       # model B from another config's save_path ...
    weights_b: str | None = None      # ... or from a directory with weights.npz + dict
    data: str = "valid"               # valid | test | train
    interm: str | None = None
    layer: int | None = None
    top_k: int = 1                    # units activated per token
    features: str = "token,pos"
    pos_mapping: str | None = None
    separate: tuple = ()              # comma-separated tag lists, e.g. ("NN,NNS",)
    max_delay: int | None = None      # number of delays of `separate` (k = 0..D-1)
    match: bool = False               # pair units of A and B by the Hungarian algorithm


@dataclasses.dataclass
class TxraySide:
    """One model's winners: its source, active-token counts [H], mass and distributions per feature kind."""
    source: str
    cell: str
    missing: int                      # corpus words the model lacks (read as its unk)
    counts: np.ndarray                # [H] tokens for which the unit was among the active top-k
    state: str                        # c or h
    mass: dict                        # kind -> [H, F]
    dist: dict = None                 # kind -> [H, F], rows normalised
    separation: list = None           # rows of separation_rows, when tag sets were asked for


@dataclasses.dataclass
class TxrayResult:
    """A TX-Ray run: model A (and B), the features, and for two models their unit distances."""
    a: TxraySide
    b: TxraySide | None
    kinds: list
    names: dict                       # kind -> feature names
    layer: int
    top_k: int
    data: str
    tokens: int
    batching: str
    pos_mapping: str | None
    matched: bool
    tag_sets: list
    max_delay: int | None
    inputs: list                      # the files read (never overwritten by the outputs)
    by_index: dict = None             # kind -> [H] Hellinger distance unit i of A vs unit i of B
    partner: np.ndarray = None        # [H] the unit of B paired with unit i of A
    distances: dict = None            # kind -> [H] Hellinger distance to the partner

    def separation_span(self, model, tags):
        """txray's span for model 'a' or 'b' and a tag list 'NN,NNS' (separation_span of its rows)."""
        rows = [r for r in getattr(self, model).separation if r["tags"] == tags]
        return separation_span(rows)


DEFAULTS = TxrayOptions()


def run_txray(config_path, options=DEFAULTS):
    """TX-Ray of the model of a config (and a model B): a TxrayResult.

    Inputs: a config whose save_path holds weights.npz + dict (its data, batching and POS mapping
    are used) and TxrayOptions. Outputs: per unit the features of the tokens it was most active
    for, the distances of A's units to B's, and with options.separate the separation of the
    listed tags k = 0..max_delay-1 steps back. Cost: one forward pass over the data set per
    model, then 99 shuffles per tag list and delay (2.5 s for 51 delays on a PTB-sized pass).
    """
    from state_gradients.core import configuration, lm_data  # TensorFlow-free: bad configs fail fast

    kinds = _features(options.features)
    if options.match and not (options.config_b or options.weights_b):
        raise UserError("--match needs a model B (--config-b or --weights-b)")
    if options.config_b and options.weights_b:
        raise UserError("give model B once: --config-b or --weights-b")
    config = configuration.load_config(config_path, train=False, valid=True, test=options.data == "test")
    pos_mapping_path = options.pos_mapping or config.pos_mapping
    if "pos" in kinds and not pos_mapping_path:
        raise UserError("--features pos needs --pos-mapping FILE (or pos_mapping in the config); "
                        "use --features token without one")
    sources = [SavedModel.from_config(config)]
    if options.config_b:
        config_b = configuration.load_config(options.config_b, train=False, valid=True, test=False)
        sources.append(SavedModel.from_config(config_b))
    elif options.weights_b:
        sources.append(SavedModel(options.weights_b, "--weights-b"))
    pos_mapping = analysis.read_pos_mapping(pos_mapping_path) if "pos" in kinds else None
    tag_sets = _tag_sets(options, pos_mapping, pos_mapping_path)
    interm = measure_setup.resolve_interm(options.interm, config)
    max_delay = measure_setup.resolve_max_delay(options.max_delay, config) if tag_sets else None
    layer = config.grad_layer if options.layer is None else options.layer

    from state_gradients.training import run_epoch

    corpus = lm_data.load_corpus(config, need_train=options.data == "train", need_valid=options.data == "valid",
                                 need_test=options.data == "test")
    ids = getattr(corpus, options.data)
    batch_size, num_steps = (1, 1) if options.data == "test" else (config.batch_size, config.num_steps)
    batches = [x for x, _ in run_epoch.evaluation_batches(ids, batch_size, num_steps,
                                                           what=corpus.describe(options.data))]
    names = {"token": corpus.id_to_word}
    if pos_mapping is not None:
        pos_weights, names["pos"] = word_feature_matrix(corpus.id_to_word, pos_mapping)

    models = [source.load() for source in sources]
    for label, source, model in zip("AB", sources, models):
        measure_setup.refuse_stateless(model.cell_type, "TX-Ray (sg-txray)", source.weights_path)
        if not 0 <= layer < model.num_layers:
            raise UserError(f"--layer {layer}: model {label} ({source.weights_path}) has {model.num_layers} layer(s)")
        if options.top_k < 1 or options.top_k > model.size:
            raise UserError(f"--top-k must be between 1 and the state size {model.size}, got {options.top_k}")
    if len(models) == 2 and models[0].size != models[1].size:
        raise UserError(f"model A has {models[0].size} units and model B {models[1].size}: the comparison "
                        "needs the same state size")
    streams = np.concatenate(batches, axis=1)         # [R, L]: the R streams of the pass, in order
    sides = []
    for label, source, model in zip("AB", sources, models):
        lookup, missing = source.id_lookup(corpus.id_to_word, corpus.unk)
        component = measure_setup.state_component(model.cell_type, interm)
        units, values = collect_winners(model, batches, lookup, layer, component, options.top_k,
                                        desc=f"model {label}")
        mass, counts = stream_mass(units, values, streams, len(lookup), model.size)
        side = TxraySide(source=source.weights_path, cell=model.cell_type, missing=missing, counts=counts,
                         state=model.cell.state_names[component], mass={"token": mass})
        if tag_sets:
            side.separation = separation_rows(units, values, streams, pos_weights, names["pos"], tag_sets,
                                              max_delay, model.size)
        if "pos" in kinds:
            side.mass["pos"] = mass @ pos_weights
        side.dist = {kind: normalise(side.mass[kind]) for kind in kinds}
        sides.append(side)

    result = TxrayResult(
        a=sides[0], b=sides[1] if len(sides) == 2 else None, kinds=kinds, names=names, layer=layer,
        top_k=options.top_k, data=f"{options.data} set of {config_path}", tokens=int(sum(x.size for x in batches)),
        batching=f"{batch_size} x {num_steps}" if options.data != "test" else "one stream (B = 1)",
        pos_mapping=pos_mapping_path, matched=options.match, tag_sets=tag_sets, max_delay=max_delay,
        inputs=[config_path, options.config_b, options.pos_mapping, pos_mapping_path]
        + [s.weights_path for s in sources])
    if result.b is not None:
        a, b = result.a, result.b
        n_units = len(a.counts)
        result.by_index = {kind: unit_distances(a.dist[kind], b.dist[kind]) for kind in kinds}
        # matched on tokens (the finer features); on POS when only POS is asked for
        result.partner = (match_units(distance_matrix(a.dist[kinds[0]], b.dist[kinds[0]]))
                          if options.match else np.arange(n_units))
        result.distances = {kind: unit_distances(a.dist[kind], b.dist[kind], result.partner) for kind in kinds}
    return result


OUTPUTS = ("units.csv", "summary.txt", "top_units.png", "distance_vs_features.png", "separation.csv",
           "separation.png")


def write_outputs(result, prefix):
    """PREFIX_units.csv, _summary.txt, _top_units.png (+ _distance_vs_features.png with model B, and
    _separation.csv/.png with tag sets), atomically; returns (paths written, summary text)."""
    outputs = {name: f"{prefix}_{name}" for name in OUTPUTS}
    for path in outputs.values():
        analysis.check_not_input(path, result.inputs)
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    analysis.atomic_write_text(outputs["units.csv"], units_csv(result))
    summary = summary_text(result)
    analysis.atomic_write_text(outputs["summary.txt"], summary)
    plot_top_units(result, outputs["top_units.png"])
    written = [outputs["units.csv"], outputs["summary.txt"], outputs["top_units.png"]]
    if result.b is not None:
        plot_distance_vs_features(result, outputs["distance_vs_features.png"])
        written.append(outputs["distance_vs_features.png"])
    if result.tag_sets:
        analysis.atomic_write_text(outputs["separation.csv"], separation_csv(result))
        plot_separation(result, outputs["separation.png"])
        written += [outputs["separation.csv"], outputs["separation.png"]]
    return written, summary

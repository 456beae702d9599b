"""The report's figures as PNG bytes: SV sums per class, the decay fits, intervals, coherence, relative memory."""
# Shape letters: K delays.
import math

import numpy as np

from state_gradients.core.formats import OVERALL
from state_gradients.plots import palette
from state_gradients.plots.figure import new_figure, png_bytes


def _figure():
    fig = new_figure(7.2, 4.6)
    return fig, fig.subplots()


def _png(fig):
    # no matplotlib version stamp: the same figure is the same bytes
    return png_bytes(fig, dpi=110, stamp=False)


def _classes_png(fig, ax, ylabel, title, log_y):
    """The PNG of a figure with one line per class against the delay."""
    ax.set_xlabel("delay k")
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return _png(fig)


def plot_classes(table, classes, title, log_y=True):
    fig, ax = _figure()
    for cls in [OVERALL] + classes:
        delays = sorted(table[cls])
        ax.plot(delays, [table[cls][k] for k in delays], marker=".", markersize=3, label=cls, **palette.style(cls))
    return _classes_png(fig, ax, "sum of singular values of G·D", title, log_y)


def plot_fits(overall, exp_fit, pow_fit):
    return _png(fits_figure(overall, exp_fit, pow_fit))


def fits_figure(values, exp_fit, pow_fit, label="overall (measured)"):
    """The Figure of a class's SV sums ({delay: sum}) with its exponential and power-law fits (log y)."""
    fig, ax = _figure()
    delays = np.array(sorted(values))
    ax.plot(delays, [values[k] for k in delays], "k.", label=label)
    k = np.array(exp_fit.delays, dtype=np.float64)
    ax.plot(k, exp_fit.predict(k), label=f"exponential, tau = {exp_fit.rate:.3g} (RMS log error {exp_fit.rmse_log:.3g})")
    ax.plot(k, pow_fit.predict(k), label=f"power law, b = {pow_fit.rate:.3g} (RMS log error {pow_fit.rmse_log:.3g})")
    ax.set_xlabel("delay k")
    ax.set_ylabel("sum of singular values of G·D")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_intervals(by_key, classes, title):
    """Bias-corrected SV sums with their 95% intervals per class, each class's noise floor dashed (log y)."""
    fig, ax = _figure()
    for cls in classes:
        delays = sorted(k for c, k in by_key if c == cls)
        rows = [by_key[cls, k] for k in delays]
        keep = [i for i, r in enumerate(rows) if math.isfinite(r["estimate"]) and r["estimate"] > 0]
        if not keep:
            continue
        k = np.array([delays[i] for i in keep], dtype=np.float64)
        est = np.array([rows[i]["estimate"] for i in keep])
        lo = np.array([max(rows[i]["lo"], est[j] / 1e3) for j, i in enumerate(keep)])   # log axis: no lo <= 0
        hi = np.array([rows[i]["hi"] for i in keep])
        style = palette.style(cls)
        ax.errorbar(k, est, yerr=[est - lo, hi - est], marker=".", markersize=3, capsize=2, label=cls, **style)
        floor = np.array([rows[i]["noise_floor"] for i in keep])
        ax.plot(k, floor, ":", color=style["color"], linewidth=1)
    ax.plot([], [], ":", color="grey", label="noise floor (dotted, per class)")
    return _classes_png(fig, ax, "bias-corrected SV sum of G·D, 95% interval", title, True)


def plot_coherence(by_key, classes, title):
    """The size-free control per class: coherence² / magnitude² with its 95% interval, against delay."""
    fig, ax = _figure()
    for cls in classes:
        rows = sorted((k, r) for (c, k), r in by_key.items() if c == cls and math.isfinite(r["coherence_ratio_se"]))
        if not rows:
            continue
        k = np.array([k for k, _ in rows], dtype=np.float64)
        y = np.array([r["coherence_ratio"] for _, r in rows])
        lo = np.array([r["coherence_ratio_lo"] for _, r in rows])
        hi = np.array([r["coherence_ratio_hi"] for _, r in rows])
        ax.errorbar(k, y, yerr=[np.maximum(y - lo, 0), np.maximum(hi - y, 0)], marker=".", markersize=3, capsize=2,
                    label=cls, **palette.style(cls))
    ax.set_xlabel("delay k")
    ax.set_ylabel("coherence² / magnitude², 95% interval")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return _png(fig)


def plot_relative_memory(series, cosines, baselines):
    """Relative memory (left) and subspace cosine (right) of each difference vector, its random direction dotted."""
    fig = new_figure(10.5, 4.4)
    left, right = fig.subplots(1, 2)
    for name, values in series.items():
        colour = palette.color(name)
        delays = sorted(values)
        left.plot(delays, [values[k] for k in delays], marker=".", markersize=3, color=colour, label=name)
        rel, cos = baselines.get(name, ({}, {}))
        if rel:
            ks = sorted(rel)
            left.plot(ks, [rel[k] for k in ks], ":", color=colour, label=f"{name}: random direction")
        if name in cosines:
            ks = sorted(cosines[name])
            right.plot(ks, [cosines[name][k] for k in ks], marker=".", markersize=3, color=colour, label=name)
        if cos:
            ks = sorted(cos)
            right.plot(ks, [cos[k] for k in ks], ":", color=colour, label=f"{name}: random direction")
    left.set_ylabel("relative memory ‖(G·D) d̂‖ / σ_max")
    right.set_ylabel("cosine of d̂ with the top right singular vectors")
    for ax in (left, right):
        ax.set_xlabel("delay k")
        ax.set_ylim(0, 1.05)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    if not cosines:
        right.text(0.5, 0.5, "subspace cosine not computed", ha="center", va="center", transform=right.transAxes)
    fig.tight_layout()
    return _png(fig)

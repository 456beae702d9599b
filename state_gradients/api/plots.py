"""Plots of profiles and measures as functions that return matplotlib Figures (no pyplot state, no display)."""
# Shape letters: C classes, D delays.
import numpy as np

from state_gradients.measures import interpret_state
from state_gradients.measures import txray as txray_tool
from state_gradients.plots import figure, palette
from state_gradients.report import figures


def plot_sv_sums(profile, grad_norm=None, classes=None, intervals=True, log_y=True):
    """SV sum of the average G·D against the delay, one line per class; with the profile's blocks (intervals
    True) the bias-corrected estimate with its 95% interval as error bars, else the plain SV sums."""
    from matplotlib.ticker import MaxNLocator

    classes = list(classes or profile.classes)
    fig = figure.new_figure()
    ax = fig.subplots()
    if intervals and profile.blocks and grad_norm is not None:
        est = profile.sv_intervals(grad_norm)
        for cls in classes:
            row = est.row(cls)
            keep = np.isfinite(row["estimate"])
            y = row["estimate"][keep]
            ax.errorbar(np.array(est.delays)[keep], y, yerr=[y - row["lo"][keep], row["hi"][keep] - y], marker=".",
                        capsize=2, label=cls, **palette.style(cls))
        what = "bias-corrected SV sum of G·D (95% interval)"
    else:
        sums = profile.sv_sums(grad_norm)
        for cls in classes:
            ax.plot(profile.delays, sums[profile.classes.index(cls)], marker=".", label=cls, **palette.style(cls))
        what = "sum of singular values of " + ("G·D" if grad_norm is not None else "G (not normalised)")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("delay k")
    ax.set_ylabel(what)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_decay(profile, grad_norm, cls="overall", first_delay=1):
    """One class's SV sums of G·D against the delay (log y) with the exponential and power-law fits (sg-report's
    figure of the fits)."""
    exp_fit, pow_fit = profile.fit_decay(grad_norm, cls, first_delay)
    return figures.fits_figure(profile.table(grad_norm)[cls], exp_fit, pow_fit, label=f"{cls} (measured)")


def plot_sigma(result):
    """σ against the delay per class of a SigmaResult (sg-interpret-state's figure)."""
    return interpret_state.figure(result)


def plot_separation(result):
    """TX-Ray's separation of the tag sets against the delay for models A and B (sg-txray's figure)."""
    return txray_tool.plot_separation(result)

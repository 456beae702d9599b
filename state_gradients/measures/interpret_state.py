"""Perturbation-based memory (Guan et al., ICML 2019): learned noise scales sigma per input position of a state."""
# Shape letters: W sampled windows, D delays, N windows of the validation pass, B batch rows,
# T window length, C classes (overall first, then one per class file). The loss and its
# optimiser: state_gradients/measures/sigma_learner.py (imported only when sigma is measured, so that
# the command line parses its flags without TensorFlow).
import csv
import dataclasses
import io
import os

import numpy as np

from state_gradients.core import configuration, lm_data
from state_gradients.core.cli import progress_bar
from state_gradients.core.errors import UserError
from state_gradients.core.formats import OVERALL, class_masks
from state_gradients.files.saved_model import SavedModel
from state_gradients.measures import analysis
from state_gradients.passes import measure_setup
from state_gradients.plots import palette
from state_gradients.plots.figure import new_figure, save_png



def validation_ids(config, source):
    """The validation data as ids of the model's vocabulary (saved_model's policy: missing words -> unk)."""
    return source.ids(lm_data.load_corpus(config, need_train=False, need_valid=True, need_test=False), "valid")


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------

def window_rows(numbers, t, words, sigma):
    """Rows (window, t, delay, word, sigma): numbers [W], words [W][D] (word at t-k), sigma [W, D] by delay."""
    return [(int(n), t, k, words[w][k], float(sigma[w, k]))
            for w, n in enumerate(numbers) for k in range(sigma.shape[1])]


def class_averages(sigma, member, names):
    """Rows (class, delay, count, mean, std) from sigma [W, D] by delay and member [C, W, D] 0/1."""
    rows = []
    for c, name in enumerate(names):
        for k in range(sigma.shape[1]):
            values = sigma[member[c, :, k] > 0, k]
            if len(values):
                rows.append((name, k, len(values), float(values.mean()), float(values.std())))
    return rows


def _csv(header, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([analysis.format_number(v) if isinstance(v, float) else v for v in row])
    return buffer.getvalue()


def draw(rows, names, max_sigma, title):
    """sigma against delay, one line per class; the same size and delay axis as plot_svs.py's figure."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(6.4, 4.8)
    ax = fig.subplots()
    for name in names:
        points = [(k, mean, std) for cls, k, _, mean, std in rows if cls == name]
        if points:
            k, mean, std = (np.array(column, dtype=np.float64) for column in zip(*points))
            ax.plot(k, mean, marker=".", label=name, **palette.style(name))
            # the spread of the windows' sigmas (mean / exp(sd of log) .. mean * exp(sd of log) would need
            # the logs; mean - sd can go below 0 on a log axis, so the band is clipped at a tenth of the mean)
            ax.fill_between(k, np.maximum(mean - std, mean / 10), mean + std, color=palette.color(name), alpha=0.08,
                            linewidth=0)
    if max_sigma is not None:
        ax.axhline(max_sigma, color="gray", linestyle="--", linewidth=0.8, label="max sigma")
    ax.set_yscale("log")   # sigma tends to grow geometrically with the delay
    ax.set_xlabel("delay")
    ax.set_ylabel("learned sigma, mean ± sd over windows")
    ax.text(0.99, 0.01, "small sigma: the state depends strongly on that word", transform=ax.transAxes,
            ha="right", va="bottom", fontsize="x-small", color="dimgray")
    ax.set_title(title, fontsize="small")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class SigmaOptions:
    """The settings of one run (the CLI's flags); None: the config's value or the derived default."""
    windows: int = 50            # validation windows, sampled without replacement
    seed: int = 1                # of the window sample and the noise
    time_step: int | None = None     # t (default: the config's time_step if one integer, else num_steps - 1)
    max_delay: int | None = None     # number of delays D (measure_setup's rule)
    interm: str | None = None        # cell | hidden (measure_setup's rule)
    layer: int | None = None         # (measure_setup's rule)
    scale: float = 1e-3          # lambda
    steps: int = 300             # Adam steps per window
    lr: float = 0.05             # Adam learning rate on log sigma
    samples: int = 8             # noise draws per step
    max_sigma: float | None = None   # default 10 x the std of the embedding entries
    init_sigma: float | None = None  # default 0.1 x that std
    per_dim: bool = False        # one sigma per embedding dimension
    chunk: int = 16              # windows optimised together (memory vs speed)
    pos_mapping: str | None = None   # default: the config's
    pos_classes: str | None = None   # comma-separated class files; default: the config's


@dataclasses.dataclass
class SigmaResult:
    """Noise scales of one run: per sampled window and delay, and their averages per class."""
    config: str
    time_step: int
    layer: int
    interm: str
    numbers: np.ndarray          # [W] window numbers (n = batch * B + row, as in the gradient pass)
    sigma: np.ndarray            # [W, D], column k = delay k
    words: list                  # [W][D] the word at t - k
    classes: list                # 'overall', then one name per class file
    rows: list                   # (class, delay, count, mean sigma, std sigma)
    phi_var: float               # s2 over all validation windows
    max_sigma: float
    total_windows: int
    scale: float
    inputs: list                 # the files read (never overwritten by the outputs)

    def mean_sigma(self, cls, min_delay=0):
        """Mean over delays >= min_delay of the class's mean sigma (nan when it has none)."""
        values = [mean for name, k, _, mean, _ in self.rows if name == cls and k >= min_delay]
        return float(np.mean(values)) if values else float("nan")


DEFAULTS = SigmaOptions()


def _settings(options, config, model):
    """Resolve and check the options against the config and the model."""
    def positive(name, value, minimum=1):
        if value is None or value < minimum:
            raise UserError(f"--{name} must be >= {minimum}, got {value}")

    for name in ("windows", "steps", "samples", "chunk"):
        positive(name, getattr(options, name))
    for name in ("scale", "lr", "max_sigma", "init_sigma"):
        value = getattr(options, name)
        if value is not None and not value > 0:
            raise UserError(f"--{name.replace('_', '-')} must be > 0, got {value}")
    t = measure_setup.resolve_time_step(options.time_step, config)
    max_delay = measure_setup.resolve_max_delay(options.max_delay, config)
    layer = measure_setup.resolve_layer(options.layer, config, model.num_layers)
    interm = measure_setup.resolve_interm(options.interm, config)
    std = float(np.std(model.embedding.numpy()))
    max_sigma = options.max_sigma if options.max_sigma is not None else 10 * std
    init_sigma = options.init_sigma if options.init_sigma is not None else 0.1 * std
    if init_sigma > max_sigma:
        raise UserError(f"--init-sigma {init_sigma} exceeds --max-sigma {max_sigma}")
    pos_mapping = options.pos_mapping if options.pos_mapping is not None else config.pos_mapping
    class_files = ([p.strip() for p in options.pos_classes.split(",") if p.strip()]
                   if options.pos_classes is not None else config.pos_class_files())
    if class_files and not pos_mapping:
        raise UserError("--pos-classes needs a POS mapping: pass --pos-mapping or set pos_mapping in the config")
    return dict(t=t, delays=measure_setup.delays_at(max_delay, t, options.max_delay), layer=layer, interm=interm, max_sigma=max_sigma,
                init_sigma=init_sigma, pos_mapping=pos_mapping, class_files=class_files)


def measure_sigma(config_path, options=DEFAULTS):
    """Perturbation memory of the model of a config: SigmaResult for options.windows sampled windows.

    Inputs: a config whose save_path holds weights.npz + dict, and SigmaOptions. Outputs: per
    window and delay the learned sigma, and per class (the word at t - k) the mean and std.
    Cost: one forward pass over the validation set, then per window options.steps Adam steps
    of options.samples forward passes over D positions (D = min(max_delay, t + 1)): about
    windows x steps x samples x D cell steps, batched options.chunk windows at a time.
    """
    import tensorflow as tf

    from state_gradients.measures.sigma_learner import (SigmaLearner, pass_states, phi_variance, sigma_per_position,
                                                        state_phi)

    config = configuration.load_config(config_path, train=False, valid=True, test=False)
    dtype = tf.float64 if config.grad_dtype == "float64" else tf.float32
    source = SavedModel.from_config(config)
    measure_setup.refuse_stateless(config.basic_cell, "sigma (sg-interpret-state)", config.path)
    model, id_to_word = source.load(dtype), source.id_to_word
    s = _settings(options, config, model)
    names = [OVERALL] + [analysis.class_name(p) for p in s["class_files"]]
    table = class_masks(s["pos_mapping"], s["class_files"], id_to_word)               # [C, V]

    ids = validation_ids(config, source)
    windows, _ = lm_data.make_windows(ids, config.batch_size, config.num_steps,
                                      what=lm_data.describe_split(config, "valid"))
    total = windows.shape[0] * windows.shape[1]
    if options.windows > total:
        raise UserError(f"--windows {options.windows}: the validation data has only {total} windows of "
                        f"{config.num_steps} (batch_size {config.batch_size})")
    t, d = s["t"], s["delays"]
    first = t - d + 1
    component = measure_setup.state_component(model.cell_type, s["interm"])
    targets, enter = pass_states(model, windows, s["layer"], component, t, first)
    phi_var = phi_variance(targets)
    numbers = np.sort(np.random.default_rng(options.seed).choice(total, options.windows, replace=False))
    flat = windows.reshape(-1, config.num_steps)   # window n = i * B + r, as in the gradient pass
    inputs = flat[numbers, first:t + 1]                                          # [W, D]
    embedding = model.embedding.numpy()

    learner = SigmaLearner(state_phi(model, s["layer"], component), scale=options.scale, lr=options.lr,
                           samples=options.samples, per_dim=options.per_dim, max_sigma=s["max_sigma"])
    bar = progress_bar(total=options.steps * options.windows, unit="step", desc="sigma")
    sigmas = []
    for c0 in range(0, options.windows, options.chunk):
        part = slice(c0, c0 + options.chunk)
        state = tuple(tuple(tf.constant(comp[numbers[part]]) for comp in layer) for layer in enter)
        sigma, _ = learner.fit(tf.constant(embedding[inputs[part]]), phi_var, steps=options.steps, seed=options.seed,
                               init_sigma=s["init_sigma"], window_ids=numbers[part], args=state,
                               progress=lambda n=len(numbers[part]): bar.update(n))
        sigmas.append(sigma_per_position(sigma))
    bar.close()
    by_delay = np.concatenate(sigmas)[:, ::-1]                                       # [W, D], column k = delay k
    source_ids = inputs[:, ::-1]                                                      # word at t-k
    member = table[:, source_ids]                                                     # [C, W, D]
    return SigmaResult(config=config.path, time_step=t, layer=s["layer"], interm=s["interm"], numbers=numbers,
                       sigma=by_delay, words=[[id_to_word[i] for i in row] for row in source_ids],
                       classes=names, rows=class_averages(by_delay, member, names), phi_var=phi_var,
                       max_sigma=s["max_sigma"], total_windows=total, scale=options.scale,
                       inputs=[config.path, s["pos_mapping"], *s["class_files"]])


def output_paths(out):
    return [f"{out}_windows.csv", f"{out}.csv", f"{out}.png"]


def figure(result):
    """The Figure of a SigmaResult: sigma against delay per class, titled with its config and settings."""
    title = (f"{os.path.basename(result.config)}\n{result.interm} state of layer {result.layer} at "
             f"t={result.time_step}, {len(result.numbers)} windows, scale {result.scale:g}")
    return draw(result.rows, result.classes, result.max_sigma, title)


def write_outputs(result, out):
    """OUT_windows.csv, OUT.csv and OUT.png of a SigmaResult (atomic); returns their paths."""
    outputs = output_paths(out)
    for path in outputs:
        analysis.check_not_input(path, result.inputs)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig = figure(result)
    analysis.atomic_write_text(outputs[0], _csv(["window", "t", "delay", "word", "sigma"],
                                                window_rows(result.numbers, result.time_step, result.words,
                                                            result.sigma)))
    analysis.atomic_write_text(outputs[1], _csv(["class", "delay", "count", "mean_sigma", "std_sigma"], result.rows))
    save_png(fig, outputs[2], dpi=100)
    return outputs

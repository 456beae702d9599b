"""Perturbation-based memory (Guan et al., ICML 2019): learned noise scales sigma per input position of a state."""
# Shape letters: W windows (independent problems) optimised together, S noise samples per step,
# D input positions of Phi (delays), E embedding, H state, K output size of Phi, N windows of the
# validation pass, B batch rows, T window length, C classes (overall first, then one per class file).
#
# The loss (one problem; x = x_1..x_D the inputs of Phi, theta_i = log sigma_i the parameters):
#
#     L(theta) = (1/S) sum_s ||Phi(x + sigma o eps_s) - Phi(x)||^2 / s2  -  scale * sum_i log sigma_i
#
# eps_s ~ N(0, I) of x's shape, drawn afresh at every step (seeded); sigma o eps multiplies the
# E values of position i by sigma_i (one sigma per position, shared over its E dimensions), or,
# with per_dim, by sigma_ie, where then `sum_i log sigma_i` reads `sum_i mean_e log sigma_ie` (the
# same loss when all sigma_ie of a position agree). s2 = sum_k Var(Phi_k) over sampled inputs
# (phi_variance). Minimised by Adam on theta, projected onto theta <= log max_sigma after every step;
# the result is exp of theta averaged over the last quarter of the steps.
#
# For a linear Phi(x) = sum_i w_i x_i the optimum is sigma_i^2 = scale * s2 / (2 E w_i^2); in
# general, while the noise stays in Phi's linear range, sigma_i = sqrt(scale * s2 / 2) / ||J_i||_F
# with J_i = d Phi / d x_i: for an RNN state, the reciprocal Frobenius norm of the state gradient.
#
# The model tool: Phi(x) = s_t (one layer's c or h at position t of a validation window) as a
# function of the D = min(max_delay, t + 1) embeddings x_{t-D+1..t}, with the earlier inputs and
# the state entering the window held fixed (the state carried through the validation pass, as in
# the gradient pass), dropout off. Delay k is position t - k, i.e. row D - 1 - k of x.
import csv
import dataclasses
import io
import os

import numpy as np
import tensorflow as tf

from aux_scripts.measures import analysis
from tf_scripts import configuration, lm_data, measure_setup
from tf_scripts.errors import UserError, progress_bar
from tf_scripts.saved_model import SavedModel
from tf_scripts.formats import class_masks

OVERALL = "overall"
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8   # Adam's usual constants


# --------------------------------------------------------------------------------------------
# The method, for any Phi
# --------------------------------------------------------------------------------------------

def phi_variance(outputs):
    """s2 = sum over output units of the unit's variance (ddof 1) over sampled inputs: outputs [N, K...]."""
    outputs = np.asarray(outputs, dtype=np.float64)
    outputs = outputs.reshape(outputs.shape[0], -1)
    if outputs.shape[0] < 2:
        raise ValueError("the variance of Phi needs outputs of at least 2 sampled inputs")
    return float(outputs.var(axis=0, ddof=1).sum())


def batch_phi(phi):
    """Turn phi: x [D, ...] -> [K...] into the batched form ([W, S, D, ...], args) -> [W, S, K]."""
    def batched(xt, args):
        del args
        shape = tf.shape(xt)
        flat = tf.reshape(xt, tf.concat([[-1], shape[2:]], 0))
        out = tf.vectorized_map(phi, flat)
        return tf.reshape(out, [shape[0], shape[1], -1])
    return batched


class SigmaLearner:
    """Adam on log sigma for W independent problems at once (their losses are summed; Adam is elementwise).

    phi_batched(xt [W, S, D, ...], args) -> [W, S, K]; args is passed through unchanged (e.g.
    per-window states, leading dimension W). The step is traced once per input shape, so one
    learner serves many calls of fit().
    """

    def __init__(self, phi_batched, *, scale, lr, samples, per_dim=False, max_sigma=None):
        if scale <= 0 or lr <= 0 or samples < 1:
            raise ValueError("scale and lr must be > 0 and samples >= 1")
        if max_sigma is not None and max_sigma <= 0:
            raise ValueError("max_sigma must be > 0")
        self.phi, self.scale, self.lr, self.samples = phi_batched, float(scale), float(lr), int(samples)
        self.per_dim, self.max_sigma = per_dim, max_sigma
        self._step = tf.function(self._step_eager, reduce_retracing=True)
        self._phi0 = tf.function(lambda x, args: self.phi(x[:, None], args)[:, 0], reduce_retracing=True)

    def _sigma_shape(self, theta, x):
        """theta [W, D] or [W, D, ...] -> broadcastable to the noise [W, S, D, ...]."""
        if self.per_dim:
            return theta[:, None]
        extra = tf.ones([tf.rank(x) - 2], tf.int32)
        return tf.reshape(theta, tf.concat([tf.shape(theta)[:1], [1], tf.shape(theta)[1:2], extra], 0))

    def _loss(self, theta, x, y0, seeds, it, phi_var, args):
        """Per-problem loss [W] at theta, with the noise of step `it`."""
        noise_shape = tf.concat([[self.samples], tf.shape(x)[1:]], 0)

        def draw(seed):  # one problem's noise: the seed folds in the step, so chunking changes nothing
            return tf.random.stateless_normal(noise_shape, tf.random.experimental.stateless_fold_in(seed, it),
                                              dtype=x.dtype)

        eps = tf.map_fn(draw, seeds, fn_output_signature=x.dtype)            # [W, S, D, ...]
        sigma = tf.exp(self._sigma_shape(theta, x))
        diff = self.phi(x[:, None] + sigma * eps, args) - y0[:, None]          # [W, S, K]
        distortion = tf.reduce_mean(tf.reduce_sum(tf.square(diff), -1), 1) / phi_var
        log_sigma = theta
        if self.per_dim and theta.shape.rank > 2:
            log_sigma = tf.reduce_mean(tf.reshape(theta, [tf.shape(theta)[0], tf.shape(theta)[1], -1]), -1)
        return distortion - self.scale * tf.reduce_sum(log_sigma, 1)

    def _step_eager(self, theta, m, v, it, x, y0, seeds, phi_var, args):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            loss = self._loss(theta, x, y0, seeds, it, phi_var, args)
            total = tf.reduce_sum(loss)
        grad = tape.gradient(total, theta)
        m = BETA1 * m + (1 - BETA1) * grad
        v = BETA2 * v + (1 - BETA2) * tf.square(grad)
        t = tf.cast(it + 1, theta.dtype)
        m_hat, v_hat = m / (1 - BETA1 ** t), v / (1 - BETA2 ** t)
        theta = theta - self.lr * m_hat / (tf.sqrt(v_hat) + ADAM_EPS)
        if self.max_sigma is not None:
            theta = tf.minimum(theta, tf.cast(np.log(self.max_sigma), theta.dtype))
        return theta, m, v, loss

    def fit(self, x, phi_var, *, steps, seed, init_sigma=1.0, window_ids=None, args=(), progress=None):
        """x [W, D, ...] -> (sigma [W, D] (per_dim: x's shape), losses [steps, W] before each update).

        sigma = exp of the mean of log sigma over the last quarter of the steps (Polyak
        averaging: the noisy gradient keeps single iterates jittering around the optimum).

        window_ids [W] (default 0..W-1) and seed fix each problem's noise; init_sigma is the
        starting sigma of every position (clipped to max_sigma).
        """
        if steps < 1 or phi_var <= 0 or init_sigma <= 0:
            raise ValueError("steps must be >= 1, phi_var and init_sigma > 0")
        x = tf.convert_to_tensor(x)
        if x.shape.rank < 2:
            raise ValueError("x must be [W, D, ...]")
        w = int(x.shape[0])
        ids = np.arange(w) if window_ids is None else np.asarray(window_ids)
        seeds = tf.constant(np.stack([np.full(w, seed), ids], 1), tf.int64)
        start = np.log(init_sigma if self.max_sigma is None else min(init_sigma, self.max_sigma))
        theta = tf.fill(x.shape if self.per_dim else x.shape[:2], tf.cast(start, x.dtype))
        m = v = tf.zeros_like(theta)
        phi_var = tf.constant(phi_var, x.dtype)
        y0 = self._phi0(x, args)
        losses = np.empty((steps, w))
        tail = max(1, steps // 4)
        theta_sum = 0.0
        for it in range(steps):
            theta, m, v, loss = self._step(theta, m, v, tf.constant(it, tf.int64), x, y0, seeds, phi_var, args)
            losses[it] = loss.numpy()
            if it >= steps - tail:
                theta_sum = theta_sum + theta.numpy()
            if progress is not None:
                progress()
        return np.exp(theta_sum / tail), losses


def learn_sigmas(phi, x, phi_var, *, scale, steps, lr, samples, seed, init_sigma=1.0, max_sigma=None,
                 per_dim=False, return_losses=False):
    """Learned sigma [D] (per_dim: x's shape) of phi: x [D, ...] -> [K...] at x (the module comment's loss).

    phi_var: s2, e.g. phi_variance of phi's outputs over sampled inputs. return_losses: also
    the loss before each of the `steps` updates, [steps].
    """
    learner = SigmaLearner(batch_phi(phi), scale=scale, lr=lr, samples=samples, per_dim=per_dim,
                           max_sigma=max_sigma)
    sigma, losses = learner.fit(tf.convert_to_tensor(x)[None], phi_var, steps=steps, seed=seed,
                                init_sigma=init_sigma)
    return (sigma[0], losses[:, 0]) if return_losses else sigma[0]


def sigma_per_position(sigma):
    """[W, D, ...] -> [W, D]: per_dim sigmas summarised by their geometric mean (exp of the mean log)."""
    sigma = np.asarray(sigma)
    if sigma.ndim == 2:
        return sigma
    return np.exp(np.log(sigma.reshape(sigma.shape[0], sigma.shape[1], -1)).mean(-1))


# --------------------------------------------------------------------------------------------
# Phi = a state of the language model
# --------------------------------------------------------------------------------------------

def state_phi(model, layer, component):
    """Batched Phi: (xt [W, S, D, E], state entering position t-D+1: per layer tuple of [W, H]) -> s_t [W, S, H]."""
    def phi(xt, state):
        shape = tf.shape(xt)
        x = tf.reshape(xt, [-1, shape[2], shape[3]])
        for l in range(layer + 1):
            seq = model.run_layer(l, x, tuple(tf.repeat(s, shape[1], axis=0) for s in state[l]))
            x = seq[-1]   # the next layer reads this layer's h
        return tf.reshape(seq[component][:, -1], [shape[0], shape[1], -1])
    return phi


def pass_states(model, windows, layer, component, t, first):
    """Forward pass over the validation windows [N, B, T], state carried from batch to batch.

    Returns s_t of every window [N*B, H] and the state (all layers) entering position `first`
    of every window: per layer tuple of [N*B, H] (the entering state itself when first = 0).
    """
    forward = measure_setup.make_forward_step(model)
    n, b, _ = windows.shape
    state = model.zero_state(b)
    targets, before = [], []
    for i in range(n):
        all_states, final = forward(windows[i].astype(np.int32), state)
        targets.append(all_states[layer][component][:, t].numpy())
        if first == 0:
            before.append(tuple(tuple(s.numpy() for s in l) for l in state))
        else:
            before.append(tuple(tuple(s[:, first - 1].numpy() for s in l) for l in all_states))
        state = final
    enter = tuple(tuple(np.concatenate([bt[l][c] for bt in before]) for c in range(len(before[0][l])))
                  for l in range(len(before[0])))
    return np.concatenate(targets), enter


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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name in names:
        points = [(k, mean) for cls, k, _, mean, _ in rows if cls == name]
        if points:
            ax.plot([k for k, _ in points], [m for _, m in points], marker=".", label=name)
    if max_sigma is not None:
        ax.axhline(max_sigma, color="gray", linestyle="--", linewidth=0.8, label="max sigma")
    ax.set_yscale("log")   # sigma tends to grow geometrically with the delay
    ax.set_xlabel("delay")
    ax.set_ylabel("mean learned sigma (small = state depends on the word)")
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
    config = configuration.load_config(config_path, train=False, valid=True, test=False)
    dtype = tf.float64 if config.grad_dtype == "float64" else tf.float32
    source = SavedModel.from_config(config)
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
    analysis.atomic_write(outputs[2], lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return outputs

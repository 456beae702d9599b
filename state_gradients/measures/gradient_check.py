"""gradient_check.py's job: check state gradients and weight gradients of a trained model against numpy BPTT and finite differences."""
# Shape letters: N sampled windows, B batch rows of the validation pass, T window length,
# E embedding, H state, D delays, P points of the loss curve.
#
#   validation windows (config B, T) --numpy forward, state carried--> state entering each sample
#        |
#        +-- (a) G[t, k] = d s_t / d x_{t-k}:  numpy BPTT  vs  TF engine (float64 copy)
#        |                                     numpy BPTT  vs  float64 central differences
#        +-- (b) d loss / d w for one weight:  numpy BPTT  vs  central difference; loss curve + tangent (PNG)
#
# A Transformer's windows carry no state, and its reference is its numpy twin
# (numpy_transformer.py, written from the block's definition): (a) TF engine and TF autodiff
# (GradientTape.jacobian) vs the twin's float64 central differences; (b) TF autodiff vs the
# twin's central difference of the loss.
#
# The relative difference of a window is max_k max|G_a - G_b| / max_k max|G_a| (docs/spec.md §6): the
# largest entry of the window's matrices at any delay, so near-zero matrices at long delays are
# judged on the window's scale (the delay-0 matrix alone is not a safe scale: with a saturated
# GRU update gate it can be 1000x smaller than a later delay's).
import re

import numpy as np

from state_gradients.core import configuration, lm_data
from state_gradients.core.cli import progress_bar
from state_gradients.core.errors import UserError
from state_gradients.files.saved_model import SavedModel
from state_gradients.measures import analysis
from state_gradients.models.numpy_rnn import NumpyRNN, finite_difference_state_gradients, finite_difference_weight
from state_gradients.passes import measure_setup
from state_gradients.plots import figure

_WEIGHT_SPEC = re.compile(r"^([A-Za-z0-9_/]+)\[\s*(\d+)\s*(?:,\s*(\d+)\s*)?\]$")


# ------------------------------------------------------------------------------------ inputs

def load_trained(config):
    """(NumpyRNN, weights.npz path, validation ids) of the model in config.save_path.

    The vocabulary comes from save_path/dict; the validation words are mapped to it by
    state_gradients.files.saved_model's policy (words it lacks -> its unk token).
    """
    source = SavedModel.from_config(config)
    source.word_to_id   # the model's files checked before the data is read
    corpus = lm_data.load_corpus(config, need_train=False, need_valid=True, need_test=False)
    return NumpyRNN.from_npz(source.weights_path), source.weights_path, source.ids(corpus, "valid")


def sample_windows(total, count, seed):
    """`count` distinct window numbers out of 0 .. total-1, sorted (seeded)."""
    if count < 1:
        raise UserError(f"--windows must be >= 1, got {count}")
    if count > total:
        raise UserError(f"--windows {count}: the validation data has only {total} windows")
    return np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))


def entering_states(net, inputs, numbers):
    """State entering each window n = i * B + r of the validation pass: per layer, tuple of [N, H].

    The pass starts from zeros and carries the state from batch to batch, as main.py's
    validation and gradient passes do; inputs [N_batches, B, T].
    """
    batch = inputs.shape[1]
    last = int(numbers.max()) // batch
    state, per_batch = net.zero_state(batch), {}
    for i in progress_bar(range(last + 1), desc="carrying the validation state", leave=False):
        per_batch[i] = state
        if i < last:
            state = net.run_state(inputs[i], state)
    rows = [per_batch[int(n) // batch] for n in numbers]
    return [tuple(np.stack([r[layer][c][int(n) % batch] for r, n in zip(rows, numbers)])
                  for c in range(len(net.state_names))) for layer in range(net.num_layers)]


def parse_weight(spec, net):
    """'NAME[ROW,COL]' or 'NAME[I]' -> (name, index tuple), checked against the model's arrays."""
    match = _WEIGHT_SPEC.match(spec.strip())
    if not match:
        raise UserError(f"--weight {spec!r} must look like NAME[ROW,COL] or NAME[I], e.g. layer0/kernel[3,5]")
    name = match.group(1)
    index = tuple(int(g) for g in match.group(2, 3) if g is not None)
    if name not in net.weights:
        raise UserError(f"--weight {spec!r}: no weight {name!r}; the model has {', '.join(net.weights)}")
    shape = net.weights[name].shape
    if len(index) != len(shape) or any(i >= s for i, s in zip(index, shape)):
        raise UserError(f"--weight {spec!r}: {name} has shape {shape}, index {list(index)} is outside it")
    return name, index


def weight_label(name, index):
    return f"{name}[{','.join(str(i) for i in index)}]"


# ------------------------------------------------------------------------------------ (a) state gradients

def relative_differences(reference, other):
    """Per window [N]: max_k max|reference[k] - other[k]| / max_k max|reference[k]| (docs/spec.md §6).

    reference, other: {k: [N, H, E]}. A window whose matrices are all zero is judged on the
    absolute difference.
    """
    diff = np.max([np.abs(reference[k] - other[k]).max(axis=(1, 2)) for k in reference], axis=0)
    scale = np.max([np.abs(reference[k]).max(axis=(1, 2)) for k in reference], axis=0)
    return diff / np.where(scale > 0, scale, 1.0)


def engine_state_gradients(weights_path, inputs, state, layer, component, t, max_delay):
    """{k: [N, H, E]} from tf_scripts' StateGradients engine on a float64 copy of the model."""
    import tensorflow as tf  # local: only this check needs TensorFlow

    from state_gradients.engine.recurrent import StateGradients

    model = SavedModel(weights_path).load(tf.float64)
    engine = StateGradients(model, layer=layer, component=component, time_steps=[t], max_delay=max_delay,
                            num_steps=inputs.shape[1])
    tf_state = tuple(tuple(tf.constant(s, tf.float64) for s in layer_state) for layer_state in state)
    out, _ = engine.jacobians(inputs, tf_state)
    return {k: g[:, 0] for k, (_, g) in out.items()}


def check_state_gradients(net, weights_path, inputs, state, layer, component, t, max_delay, eps):
    """(numpy BPTT {k: [N, H, E]}, relative differences [N] to the TF engine, [N] to central differences)."""
    x = net.embed(inputs)
    bptt = net.state_gradients(x, state, layer, component, t, max_delay)
    engine = engine_state_gradients(weights_path, inputs, state, layer, component, t, max_delay)
    numeric = finite_difference_state_gradients(net, x, state, layer, component, t, max_delay, eps)
    return bptt, relative_differences(bptt, engine), relative_differences(bptt, numeric)


# ------------------------------------------------------------------------------------ (b) one weight

def check_weight(net, name, index, inputs, targets, state, span, points, eps, gradient=None):
    """Analytic vs numeric d loss / d w for one entry, and the loss curve over [w - span, w + span].

    Loss = sum of the token cross entropies of the windows / N (the training loss with the
    windows as the batch rows). Returns a dict: value, loss, analytic, numeric, relative,
    resolution (the numeric derivative's rounding error for one ulp per loss), curve_w [P],
    curve_loss [P] (curve empty when points is 0). `gradient`: the already
    computed analytic gradient array of `name`, if any.
    """
    value = float(net.weights[name][index])
    loss = float(net.loss(inputs, targets, state))
    if gradient is None:
        gradient = net.loss_and_gradients(inputs, targets, state)[1][name]
    analytic = float(gradient[index])
    numeric = float(finite_difference_weight(net, name, index, inputs, targets, state, eps))
    denominator = max(abs(analytic), abs(numeric))
    relative = abs(analytic - numeric) / denominator if denominator > 0 else 0.0
    curve_w = np.linspace(value - span, value + span, points) if points else np.zeros(0)
    curve_loss = np.array([net.perturbed(name, index, w - value).loss(inputs, targets, state)
                           for w in progress_bar(curve_w, desc="loss curve", leave=False)])
    # one ulp of rounding in each of the stencil's four losses (weights 1, 8, 8, 1 over 12 eps)
    resolution = 18 * float(np.spacing(abs(loss))) / (12 * eps)
    return {"value": value, "loss": loss, "analytic": analytic, "numeric": numeric, "relative": relative,
            "resolution": resolution, "curve_w": curve_w, "curve_loss": curve_loss}


def plot_weight_check(result, label, path):
    """PNG: the loss against the weight, the tangent line of the analytic gradient, the point w."""
    fig = figure.new_figure(6.4, 4.8)
    ax = fig.subplots()
    w, value, loss = result["curve_w"], result["value"], result["loss"]
    ax.plot(w, result["curve_loss"], marker=".", label="loss (numpy forward)")
    ax.plot(w, loss + result["analytic"] * (w - value), "--",
            label=f"tangent, analytic d loss / d w = {result['analytic']:.6g}")
    ax.plot([value], [loss], "o", color="black", label=f"w = {value:.6g}")
    ax.set_xlabel(f"weight {label}")
    ax.set_ylabel("window loss (sum of token cross entropies / windows)")
    ax.set_title(f"loss against {label}\nanalytic vs central difference: relative difference "
                 f"{result['relative']:.2e}", fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    figure.save_png(fig, path, dpi=120)


# ------------------------------------------------------------------------------------ settings

def _settings(args, config):
    """(t, max_delay, layer, component) from the flags, defaulting to the config; checked."""
    t = measure_setup.resolve_time_step(args.time_step, config)
    max_delay = measure_setup.resolve_max_delay(args.max_delay, config)
    measure_setup.delays_at(max_delay, t, args.max_delay)   # more delays asked for than t has: an error
    layer = measure_setup.resolve_layer(args.layer, config, config.num_layers)
    interm = measure_setup.resolve_interm(args.interm, config)
    return t, max_delay, layer, measure_setup.state_component(config.basic_cell, interm), interm


def run_check(args, log=print):
    """gradient_check.py's job; args: its flags as attributes (the argparse Namespace of its command line).
    Logs the comparison tables; writes --plot; returns the failed checks (empty: all within --tolerance)."""
    for flag, value in (("--span", args.span), ("--eps", args.eps), ("--weight-eps", args.weight_eps),
                        ("--tolerance", args.tolerance)):
        if not np.isfinite(value) or value <= 0:
            raise UserError(f"{flag} must be a positive number, got {value}")
    if args.points < 2 and args.plot:
        raise UserError(f"--points must be >= 2 for a plot, got {args.points}")
    if args.plot:
        if not args.plot.lower().endswith(".png"):
            raise UserError(f"--plot {args.plot} must end in .png")
        analysis.check_not_input(args.plot, [args.config])
    config = configuration.load_config(args.config, train=False, valid=True, test=False)
    if not config.family.stateful:     # the Transformer's numpy twin, its own check
        return run_transformer_check(args, config, log)
    t, max_delay, layer, component, interm = _settings(args, config)
    net, weights_path, valid = load_trained(config)
    found = (net.num_layers, net.cell_type, net.size, net.embedding_size)
    said = (config.num_layers, config.basic_cell, config.size, config.embedding_size)
    if found != said:
        raise UserError(f"{weights_path} holds a {found[0]}-layer {found[1]} with H {found[2]}, E {found[3]}, but "
                        f"{config.path} says {said[0]}-layer {said[1]} with H {said[2]}, E {said[3]}")
    name_index = parse_weight(args.weight, net) if args.weight else None
    if args.plot:
        analysis.check_not_input(args.plot, [weights_path])

    batches, targets = lm_data.make_windows(valid, config.batch_size, config.num_steps,
                                            what=lm_data.describe_split(config, "valid"))
    numbers = sample_windows(batches.shape[0] * batches.shape[1], args.windows, args.seed)
    batch = config.batch_size
    inputs = np.stack([batches[n // batch, n % batch] for n in numbers])
    labels = np.stack([targets[n // batch, n % batch] for n in numbers])
    state = entering_states(net, batches, numbers)
    state_name = net.state_names[component]
    log(f"model {weights_path}: {net.num_layers}-layer {net.cell_type}, H {net.size}, E {net.embedding_size}, "
          f"V {net.vocab_size}")
    log(f"validation windows {', '.join(str(n) for n in numbers)} of {batches.shape[0] * batch} "
          f"(batch_size {batch}, num_steps {config.num_steps}), state carried from the start of the pass")

    failures = []

    def verdict(what, value):
        if not value <= args.tolerance:  # also catches NaN
            failures.append(f"{what}: {value:.3e} > tolerance {args.tolerance:g}")
            return "FAIL"
        return "ok"

    _, to_engine, to_numeric = check_state_gradients(net, weights_path, inputs, state, layer, component, t,
                                                     max_delay, args.eps)
    log(f"(a) state gradients d {state_name}_t / d x_(t-k), layer {layer} ({interm}), t {t}, "
          f"delays 0..{min(max_delay - 1, t)}; relative differences of numpy BPTT to:")
    log("window\tTF engine\tfinite differences")
    for n, a, b in zip(numbers, to_engine, to_numeric):
        log(f"{n}\t{a:.3e}\t{b:.3e}")
    largest_engine, largest_numeric = float(np.max(to_engine)), float(np.max(to_numeric))
    log(f"largest relative difference numpy BPTT vs TF engine: {largest_engine:.3e} "
          f"{verdict('state gradients, numpy BPTT vs TF engine', largest_engine)}")
    log(f"largest relative difference numpy BPTT vs finite differences: {largest_numeric:.3e} "
          f"{verdict('state gradients, numpy BPTT vs finite differences', largest_numeric)}")

    if not net.has_output_layer:
        if args.weight or args.plot:
            raise UserError(f"{weights_path} has no output layer (an import with --no-head): there is no loss for "
                            "--weight or --plot")
        log("(b) skipped: the model has no output layer, so there is no loss to differentiate")
        return failures
    grads = net.loss_and_gradients(inputs, labels, state)[1]
    kernel = f"layer{layer}/{'gate_kernel' if net.cell_type.startswith('GRU') else 'kernel'}"
    weight_check(args, net, grads, name_index or _largest(grads, kernel), inputs, labels, state,
                 ("numpy BPTT", "fourth-order central difference"), verdict, log)
    return failures


def _largest(grads, name):
    """(name, index) of the array's entry with the largest gradient."""
    return name, np.unravel_index(np.argmax(np.abs(grads[name])), grads[name].shape)


def weight_check(args, net, grads, name_index, inputs, labels, state, sources, verdict, log):
    """(b): check_weight of one entry, logged with its verdict; --plot drawn. sources: (analytic, numeric) in words."""
    name, index = name_index[0], tuple(int(i) for i in name_index[1])
    label = weight_label(name, index)
    result = check_weight(net, name, index, inputs, labels, state, args.span, args.points if args.plot else 0,
                          args.weight_eps, gradient=grads[name])
    log(f"(b) weight {label} = {result['value']!r}, loss {result['loss']!r} (mean window loss)")
    log(f"analytic d loss / d w ({sources[0]}): {result['analytic']!r}")
    log(f"{sources[1]} (step {args.weight_eps:g}): {result['numeric']!r} (rounding resolution about "
        f"{result['resolution']:.1e})")
    log(f"relative difference: {result['relative']:.3e} "
        f"{verdict(f'weight {label}, analytic vs central difference', result['relative'])}")
    if args.plot:
        plot_weight_check(result, label, args.plot)
        log(f"wrote {args.plot}")


# ------------------------------------------------------------------------------------ Transformers

def tape_state_gradients(model, inputs, layer, component, t, max_delay):
    """{k: [N, D, E]} of d s_t / d x_{t-k} by reverse-mode autodiff (GradientTape.jacobian of s_t), float64."""
    import tensorflow as tf

    x = model.embed(tf.constant(inputs))
    with tf.GradientTape() as tape:
        tape.watch(x)
        s = model.run_layers(x)[layer][0]
        s = model.final_norm(s) if component == 1 else s
        s_t = s[:, t]
    full = tape.batch_jacobian(s_t, x).numpy()                                       # [N, D, T, E]
    return {k: full[:, :, t - k] for k in range(min(max_delay, t + 1))}


def tape_loss_gradients(model, inputs, targets):
    """{weights.npz name: d loss / d w} of the mean window loss, by autodiff (float64)."""
    import tensorflow as tf

    named = model.named_variables()
    with tf.GradientTape() as tape:
        top = model.run_layers(model.embed(tf.constant(inputs)))[-1][0]
        loss = tf.reduce_sum(model.token_losses(top, tf.constant(targets))) / inputs.shape[0]
    return {name: tf.convert_to_tensor(g).numpy() for name, g in zip(named, tape.gradient(loss, list(named.values())))}


def run_transformer_check(args, config, log):
    """run_check for basic_cell Transformer (see the module comment); returns the failed checks."""
    import tensorflow as tf

    from state_gradients.engine.transformer import TransformerStateGradients
    from state_gradients.models.numpy_transformer import NumpyTransformer, finite_difference_state_gradients

    t = measure_setup.resolve_time_step(args.time_step, config)
    max_delay = measure_setup.resolve_max_delay(args.max_delay, config)
    measure_setup.delays_at(max_delay, t, args.max_delay)
    layer = measure_setup.resolve_layer(args.layer, config, config.num_layers)
    family = config.family
    interm = args.interm or config.grad_interm or family.interm_names[0]
    if interm not in family.interm_names:
        raise UserError(f"--interm {interm}: a {config.basic_cell}'s states are {' and '.join(family.interm_names)}")
    if interm == "final" and layer != config.num_layers - 1:
        raise UserError(f"--interm final follows the top block: --layer must be {config.num_layers - 1}")
    component = family.state_index(interm)
    source = SavedModel.from_config(config)
    source.word_to_id
    corpus = lm_data.load_corpus(config, need_train=False, need_valid=True, need_test=False)
    net = NumpyTransformer.from_npz(source.weights_path)
    model = source.load(tf.float64)
    batches, targets = lm_data.make_windows(source.ids(corpus, "valid"), config.batch_size, config.num_steps,
                                            what=lm_data.describe_split(config, "valid"))
    numbers = sample_windows(batches.shape[0] * batches.shape[1], args.windows, args.seed)
    batch = config.batch_size
    inputs = np.stack([batches[n // batch, n % batch] for n in numbers])
    labels = np.stack([targets[n // batch, n % batch] for n in numbers])
    log(f"model {source.weights_path}: {net.num_layers}-block Transformer, D {net.size}, E {net.embedding_size}, "
        f"{net.num_heads} heads, V {net.vocab_size}")
    log(f"validation windows {', '.join(str(n) for n in numbers)} of {batches.shape[0] * batch} "
        f"(batch_size {batch}, num_steps {config.num_steps}); a Transformer's windows carry no state")
    failures = []

    def verdict(what, value):
        if not value <= args.tolerance:
            failures.append(f"{what}: {value:.3e} > tolerance {args.tolerance:g}")
            return "FAIL"
        return "ok"

    numeric = finite_difference_state_gradients(net, net.embed(inputs), layer, component, t, max_delay, args.eps)
    engine = TransformerStateGradients(model, layer=layer, component=component, time_steps=[t], max_delay=max_delay,
                                       num_steps=inputs.shape[1])
    out, _ = engine.jacobians(inputs, ())
    to_engine = relative_differences(numeric, {k: g[:, 0] for k, (_, g) in out.items()})
    to_tape = relative_differences(numeric, tape_state_gradients(model, inputs, layer, component, t, max_delay))
    log(f"(a) state gradients d {interm}_t / d x_(t-k), layer {layer}, t {t}, delays 0..{min(max_delay - 1, t)}; "
        "relative differences of the numpy twin's central differences to:")
    log("window\tTF engine\tTF autodiff")
    for n, a, b in zip(numbers, to_engine, to_tape):
        log(f"{n}\t{a:.3e}\t{b:.3e}")
    for what, values in (("TF engine", to_engine), ("TF autodiff", to_tape)):
        largest = float(np.max(values))
        log(f"largest relative difference finite differences vs {what}: {largest:.3e} "
            f"{verdict(f'state gradients, finite differences vs {what}', largest)}")
    if not net.has_output_layer:
        log("(b) skipped: the model has no output layer, so there is no loss to differentiate")
        return failures
    grads = tape_loss_gradients(model, inputs, labels)
    name_index = parse_weight(args.weight, net) if args.weight else _largest(grads, f"layer{layer}/qkv_kernel")
    weight_check(args, net, grads, name_index, inputs, labels, None,
                 ("TF autodiff, float64", "fourth-order central difference of the numpy twin"), verdict, log)
    return failures

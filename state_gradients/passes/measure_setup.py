"""The measures' (gradient_check, interpret_state, txray) shared flags and their one forward pass."""
# Shape letters: V corpus vocabulary, B rows, T positions, H state size.
#
# The measures load their model with saved_model.SavedModel (its vocabulary policy: the data is
# read through the config as the LM reads it, its words mapped to the model's ids by spelling).
# The defaults of the shared flags are one for all tools:
#   --interm     the config's grad_interm, else `cell` (the papers' choice; h for GRU/RNN)
#   --max-delay  the NUMBER of delays D (k = 0..D-1), as the config key; default the config's
#                max_delay, else an error that names the flag
#   --layer      the config's grad_layer (default: the top layer)
#   --time-step  the config's time_step when it is one integer, else num_steps - 1
# TensorFlow is imported only when a model is built, so bad flags and configs fail fast.
from state_gradients.core import families
from state_gradients.core.errors import UserError

DEFAULT_INTERM = "cell"


def resolve_time_step(flag, config):
    """--time-step, else the config's time_step when it is one integer, else the window's last position."""
    t = flag
    if t is None:
        t = config.time_step if isinstance(config.time_step, int) else config.num_steps - 1
    if not 0 <= t < config.num_steps:
        raise UserError(f"--time-step must lie in 0..{config.num_steps - 1} (num_steps of {config.path}), got {t}")
    return t


def resolve_interm(flag, config):
    """--interm, else the config's grad_interm, else `cell`."""
    return flag or config.grad_interm or DEFAULT_INTERM


def resolve_max_delay(flag, config, name="--max-delay"):
    """The number of delays D (k = 0..D-1): the flag, else the config's max_delay; UserError without either."""
    value = flag if flag is not None else config.max_delay
    if value is None:
        raise UserError(f"{config.path} has no max_delay: pass {name} D (the number of delays, k = 0..D-1)")
    if value < 1:
        raise UserError(f"{name} must be >= 1 (the number of delays), got {value}")
    return value


def delays_at(max_delay, t, flag=None, name="--max-delay"):
    """D = min(max_delay, t + 1): the delays k = 0..D-1 that position t has inputs for.

    A flag that asks for more than t + 1 delays is an error (the config's max_delay is cut, as the
    gradient pass cuts it: k = 0 .. min(max_delay - 1, t)), so that a user never gets fewer delays
    than typed.
    """
    if flag is not None and flag > t + 1:
        raise UserError(f"{name} {flag}: position t = {t} has only {t + 1} inputs up to it (k = 0..{t}); "
                        f"give {name} {t + 1} or less, or a later --time-step")
    return min(max_delay, t + 1)


def resolve_layer(flag, config, num_layers):
    """--layer, else the config's grad_layer; checked against the model's layers."""
    layer = config.grad_layer if flag is None else flag
    if not 0 <= layer < num_layers:
        raise UserError(f"--layer must lie in 0..{num_layers - 1}, got {layer}")
    return layer


def state_component(cell_type, interm):
    """Index of the state that --interm names (LSTM cell -> c, hidden -> h; GRU/RNN -> h: core/families.py)."""
    return families.family(cell_type).state_index(interm)


def make_forward_step(model):
    """Compiled (inputs [B, T], state) -> (every layer's states, per component [B, T, H]; final state); no dropout.

    The one forward pass of the measures: the window's states with the entering state carried in.
    """
    import tensorflow as tf

    from state_gradients.training import run_epoch

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), run_epoch.state_spec(model)])
    def step(inputs, state):
        all_states = model.run_layers(model.embed(inputs), state)
        return all_states, model.final_state(all_states)

    return step


def refuse_stateless(cell_type, measure, source):
    """UserError for the measures defined on a state carried from window to window (sigma, TX-Ray) when the family
    carries none (a Transformer)."""
    family = families.family(cell_type)
    if not family.stateful:
        raise UserError(f"{measure} is defined for recurrent models (a state carried from window to window) and is "
                        f"not available for basic_cell {cell_type} ({source}); its state gradients are "
                        f"(grad_interm {' or '.join(family.interm_names)}, docs/transformer.md)")

"""The model families, one registry line each: basic_cell's name, its code (loaded on use) and what the code asks of it."""
# Every other module asks a Family instead of comparing basic_cell with a name: the config checks
# (core/configuration.py), the model and cell classes (models/lm.py, models/cells.py), the engine
# (passes/gradient_pass.py), the measures that need a carried state (passes/measure_setup.py), the
# workflows and the report. The code is named "module:attribute" and imported on first use, so this
# table stays TensorFlow-free and below every layer that implements a family.
#
# Adding a family: a module that implements it (a recurrent cell: the cell contract at the top of
# models/cells.py; a model: the LM contract of models/lm.py's LanguageModel), and one line in FAMILIES.
import dataclasses
import importlib

from state_gradients.core.errors import UserError

RECURRENT_MODEL = "state_gradients.models.lm:LanguageModel"
RECURRENT_ENGINE = "state_gradients.engine.recurrent:StateGradients"
RECURRENT_INTERMS = (("cell", 0), ("hidden", 0))


@dataclasses.dataclass(frozen=True)
class Family:
    """What basic_cell NAME is and offers.

    Args:
        name: the value of basic_cell (and the cell_type of a saved weights.npz).
        cell: "module:attribute" of its recurrent cell class (called with forget_bias), or None for a model
            without a recurrent cell.
        model: "module:attribute" of its model class (from_config, from_arrays, the LM contract).
        engine: "module:attribute" of its state-gradient engine class.
        stateful: its windows hand their final state to the next (a recurrent model); False: every window
            starts afresh and the model has positions (max_positions, eval_stride), so σ, TX-Ray and the
            entering states of shards do not apply.
        interms: (grad_interm, index of the state component it names) pairs; the first is the state that
            sg-reproduce differentiates.
        keys: the config keys that only this family takes (derived for it, refused for others).
        needs: the config keys it requires.
        check: "module:attribute" of a TensorFlow-free check(config, fail) of its own keys, or None.
    """
    name: str
    cell: str | None = None
    model: str = RECURRENT_MODEL
    engine: str = RECURRENT_ENGINE
    stateful: bool = True
    interms: tuple = RECURRENT_INTERMS
    keys: tuple = ()
    needs: tuple = ()
    check: str | None = None

    @property
    def interm_names(self):
        return tuple(name for name, _ in self.interms)

    def state_index(self, interm):
        """The index of the state component grad_interm `interm` names (UserError when the family has no such)."""
        table = dict(self.interms)
        if interm not in table:
            raise UserError(f"basic_cell {self.name} has no state {interm!r}: its grad_interm is "
                            f"{' or '.join(self.interm_names)}")
        return table[interm]

    def model_class(self):
        return _load(self.model)

    def engine_class(self):
        return _load(self.engine)

    def make_cell(self, forget_bias=0.0):
        """The recurrent cell object (ValueError for a family without one)."""
        if self.cell is None:
            raise ValueError(f"basic_cell {self.name} has no recurrent cell")
        return _load(self.cell)(forget_bias)

    def check_config(self, config, fail):
        if self.check is not None:
            _load(self.check)(config, fail)


def _load(path):
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


FAMILIES = {family.name: family for family in (
    Family("LSTM", cell="state_gradients.models.cells:LSTM", interms=(("cell", 0), ("hidden", 1)),
           needs=("forget_bias",)),
    Family("GRU", cell="state_gradients.models.cells:GRU"),
    Family("RNN", cell="state_gradients.models.cells:RNN"),
    Family("GRU_RESET_AFTER", cell="state_gradients.models.cells:GRUResetAfter"),
    Family("minGRU", cell="state_gradients.models.mingru:MinGRU"),
    Family("DiagLinear", cell="state_gradients.models.diagonal:DiagonalLinear", interms=(("cell", 0), ("hidden", 1))),
    Family("Transformer", model="state_gradients.models.transformer:TransformerLM",
           engine="state_gradients.engine.transformer:TransformerStateGradients", stateful=False,
           interms=(("residual", 0), ("final", 1)), keys=("num_heads", "ffn_size", "max_positions", "eval_stride"),
           needs=("num_heads",), check="state_gradients.core.families:check_transformer"),
    # imported only (sg-import: GGUF files, Hugging Face folders): its shape is its weights file's (models/llama.py)
    Family("Llama", model="state_gradients.models.llama:LlamaLM", engine="state_gradients.engine.llama:LlamaStateGradients",
           stateful=False, interms=(("residual", 0), ("final", 1))),
    Family("GPTNeoX", model="state_gradients.models.neox:NeoXLM", engine="state_gradients.engine.neox:NeoXStateGradients",
           stateful=False, interms=(("residual", 0), ("final", 1))),
)}
# every key that some family needs or owns, in registry order (sg-reproduce fingerprints a model by them)
FAMILY_KEYS = tuple(dict.fromkeys(key for family in FAMILIES.values() for key in family.needs + family.keys))
# the keys only some families take -> the names of those families (the config check refuses them elsewhere)
OWNED_KEYS = {key: tuple(f.name for f in FAMILIES.values() if key in f.keys)
              for key in dict.fromkeys(key for family in FAMILIES.values() for key in family.keys)}


def family(name, what="basic_cell"):
    """The Family of a basic_cell value; UserError naming `what` and the known names."""
    if name not in FAMILIES:
        raise UserError(f"{what} must be one of {', '.join(FAMILIES)}, got {name!r}")
    return FAMILIES[name]


def check_transformer(c, fail):
    """The Transformer's own keys: heads divide the width, positions cover a window, final is the top layer."""
    if c.size % c.num_heads:
        fail("num_heads", f"size ({c.size}) must be a multiple of num_heads ({c.num_heads})")
    if c.max_positions < c.num_steps:
        fail("max_positions", f"max_positions must be >= num_steps ({c.num_steps}), got {c.max_positions}")
    if c.eval_stride > c.num_steps:
        fail("eval_stride", f"eval_stride must be <= num_steps ({c.num_steps}), got {c.eval_stride}")
    if c.grad_interm == "final" and c.grad_layer != c.num_layers - 1:
        fail("grad_layer", f"grad_interm final is the output of the final LayerNorm, after the top block: "
             f"grad_layer must be {c.num_layers - 1} (or absent), got {c.grad_layer}")
    if c.softmax == "sampled":
        fail("softmax", "softmax sampled is not available for basic_cell Transformer (use full)")

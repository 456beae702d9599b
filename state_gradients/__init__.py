"""state-gradients' public API: load or import a model, compute a memory profile, measure it, plot it.

    import state_gradients as sg
    model = sg.load_model("demo_output/model")                     # a save_path, weights.npz + dict, an import
    profile = sg.MemoryProfile.compute("demo_output/configs/demo_grad.config", grad_blocks=10)
    norm = sg.normalisation(model)                                  # D: gradients are read as G·D
    est = profile.sv_intervals(norm.d_factor)                       # [C, D] with 95% intervals over the blocks
    fig = sg.plot_sv_sums(profile, norm.d_factor, ["nouns", "adjectives"])

The command lines (sg-*, main.py, aux_scripts/*.py) are thin layers over the same functions;
the files they exchange keep their documented formats, so a profile can be saved and loaded
from either side. Everything here is importable without a display or a GPU.
"""
import importlib

# The names are loaded on first use (PEP 562): every library module lives under this package, so an eager import
# here would run the whole library (and its top layer) whenever any low-level module is imported.
_HOMES = {
    "__version__": "state_gradients.core.version",
    "class_masks": "state_gradients.api.data",
    "Comparison": "state_gradients.measures.verdicts",
    "Config": "state_gradients.core.configuration",
    "derive": "state_gradients.core.configuration",
    "Estimate": "state_gradients.api.profile",
    "Fit": "state_gradients.report.findings",
    "frequency_bins": "state_gradients.api.data",
    "import_model": "state_gradients.api.models",
    "Intervals": "state_gradients.api.profile",
    "load_model": "state_gradients.api.models",
    "MemoryProfile": "state_gradients.api.profile",
    "Model": "state_gradients.api.models",
    "Normalisation": "state_gradients.api.measures",
    "normalisation": "state_gradients.api.measures",
    "OVERALL": "state_gradients.api.profile",
    "plot_decay": "state_gradients.api.plots",
    "plot_separation": "state_gradients.api.plots",
    "plot_sigma": "state_gradients.api.plots",
    "plot_sv_sums": "state_gradients.api.plots",
    "read_config": "state_gradients.api.models",
    "read_corpus": "state_gradients.api.data",
    "read_pos_class": "state_gradients.api.data",
    "read_pos_mapping": "state_gradients.api.data",
    "read_text": "state_gradients.api.data",
    "read_token_tags": "state_gradients.api.data",
    "SavedModel": "state_gradients.files.saved_model",
    "sigma": "state_gradients.api.measures",
    "SigmaOptions": "state_gradients.measures.interpret_state",
    "SigmaResult": "state_gradients.measures.interpret_state",
    "token_class_masks": "state_gradients.api.data",
    "txray": "state_gradients.api.measures",
    "TxrayOptions": "state_gradients.measures.txray",
    "TxrayResult": "state_gradients.measures.txray",
    "UserError": "state_gradients.core.errors",
}


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOMES))


__all__ = [
    "Comparison", "Config", "Estimate", "Fit", "Intervals", "MemoryProfile", "Model", "Normalisation", "OVERALL",
    "SavedModel", "SigmaOptions", "SigmaResult", "TxrayOptions", "TxrayResult", "UserError", "class_masks", "derive",
    "frequency_bins", "import_model", "load_model", "normalisation", "plot_decay", "plot_separation", "plot_sigma",
    "plot_sv_sums", "read_config", "read_corpus", "read_pos_class", "read_pos_mapping", "read_text", "read_token_tags",
    "sigma", "token_class_masks", "txray", "__version__",
]

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
from aux_scripts.measures.interpret_state import SigmaOptions, SigmaResult
from aux_scripts.pipeline.report import Fit
from aux_scripts.measures.txray import TxrayOptions, TxrayResult
from aux_scripts.measures.verdicts import Comparison
from state_gradients.data import (class_masks, frequency_bins, read_corpus, read_pos_class, read_pos_mapping,
                                  read_text, read_token_tags, token_class_masks)
from state_gradients.measures import Normalisation, normalisation, sigma, txray
from state_gradients.models import Model, import_model, load_model, read_config
from state_gradients.plots import plot_decay, plot_separation, plot_sigma, plot_sv_sums
from state_gradients.profile import OVERALL, Estimate, Intervals, MemoryProfile
from tf_scripts.configuration import Config, derive
from tf_scripts.errors import UserError
from tf_scripts.saved_model import SavedModel
from tf_scripts.version import __version__

__all__ = [
    "Comparison", "Config", "Estimate", "Fit", "Intervals", "MemoryProfile", "Model", "Normalisation", "OVERALL",
    "SavedModel", "SigmaOptions", "SigmaResult", "TxrayOptions", "TxrayResult", "UserError", "class_masks", "derive",
    "frequency_bins", "import_model", "load_model", "normalisation", "plot_decay", "plot_separation", "plot_sigma",
    "plot_sv_sums", "read_config", "read_corpus", "read_pos_class", "read_pos_mapping", "read_text", "read_token_tags",
    "sigma", "token_class_masks", "txray", "__version__",
]

"""The embedding normalisation and the two other memory measures (σ, TX-Ray) as functions with typed results."""
# Shape letters: V vocabulary, E embedding size.
import dataclasses
import os

import numpy as np

from state_gradients.measures import interpret_state
from state_gradients.measures import txray as txray_tool
from state_gradients.measures import analysis
from state_gradients.measures.interpret_state import SigmaOptions, SigmaResult
from state_gradients.measures.txray import TxrayOptions, TxrayResult


@dataclasses.dataclass
class Normalisation:
    """The embedding space's normalisation (normalize_equal_variance.py's four files), float64:
    mean [E], cov C [E, E], d_factor D [E, E] lower triangular with C = D Dᵀ (gradients: G·D),
    z_inv Z = D⁻¹ [E, E] (embeddings: Z·x has identity covariance)."""
    mean: np.ndarray
    cov: np.ndarray
    d_factor: np.ndarray
    z_inv: np.ndarray

    def direction(self, vector):
        """d̂ = Z·v / ‖Z·v‖ [E] of an embedding-space vector (e.g. a difference of two class means)."""
        return analysis.normalised_direction(np.asarray(vector), self.z_inv)


def normalisation(embedding, source="embedding"):
    """Normalisation of an embedding [V, E] (rows = words), or of a Model's embedding."""
    if hasattr(embedding, "embedding") and not isinstance(embedding, np.ndarray):
        embedding = embedding.embedding
    return Normalisation(*analysis.normalisation(np.asarray(embedding), source))


def _options(cls, options, kwargs):
    """A SigmaOptions/TxrayOptions from an instance or keyword arguments (its field names)."""
    if options is not None and kwargs:
        raise TypeError("give options or keyword arguments, not both")
    return options if options is not None else cls(**kwargs)


def sigma(config, options: SigmaOptions | None = None, **kwargs) -> SigmaResult:
    """Perturbation memory (Guan et al.'s σ per word k steps back) of the model of a config: sg-interpret-state's
    measurement. kwargs: SigmaOptions' fields (windows, time_step, max_delay, steps, ...)."""
    return interpret_state.measure_sigma(os.fspath(config), _options(SigmaOptions, options, kwargs))


def txray(config, options: TxrayOptions | None = None, **kwargs) -> TxrayResult:
    """TX-Ray of the model of a config (and a model B): sg-txray's measurement. kwargs: TxrayOptions' fields
    (weights_b, interm, separate, max_delay, ...)."""
    return txray_tool.run_txray(os.fspath(config), _options(TxrayOptions, options, kwargs))

"""What every model class shares about its weights: named variables loaded from, and copied between, models."""
import numpy as np
import tensorflow as tf

from state_gradients.core.errors import UserError


class NamedWeights:
    """Mixin for a model with named_variables() (weights.npz name -> variable), a dtype and an optional output
    layer softmax_w (None: imported without one)."""

    @property
    def has_output_layer(self):
        return self.softmax_w is not None

    def assign_numpy(self, arrays):
        """Load weights.npz arrays into this model's variables (shapes must match)."""
        for name, var in self.named_variables().items():
            if name not in arrays:
                raise UserError(f"weights file has no array {name!r}")
            value = np.asarray(arrays[name])
            if tuple(value.shape) != tuple(var.shape):
                raise UserError(f"weights file: {name} has shape {value.shape}, the model needs {tuple(var.shape)}")
            var.assign(value.astype(self.dtype.as_numpy_dtype))

    def assign_from(self, other):
        """Copy another model's weights into this one, cast to this model's dtype (exact: no float32 rounding)."""
        for name, var in self.named_variables().items():
            var.assign(tf.cast(other.named_variables()[name], self.dtype))
        return self

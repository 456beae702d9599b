"""The gradient pass over the validation text and the forward pass the measures share."""

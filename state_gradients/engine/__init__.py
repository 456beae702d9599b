"""Exact state gradients G = d s_t / d x_(t-k): the recurrent engine and the Transformer's."""

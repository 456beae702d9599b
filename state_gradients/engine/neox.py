"""State gradients G[t, k] = d h_t / d x_{t-k} of a NeoXLM (GPT-NeoX, Pythia), exact, in forward mode over a window."""
# Shape letters: as engine/transformer.py (R rows, T positions, E = D, F, A heads, K head size, P
# delays, S sources in a chunk, N = R * S, M = E tangent directions), R' rotary dimensions.
#
# The scheme of engine/transformer.py with the GPT-NeoX block's linearisation: LayerNorm's tangent
# as GPT-2's (the checkpoint's epsilon in x̂ and 1/σ), rotary positions on the first R' components
# of the query and key tangents (linear per position), exact GELU's slope Φ(z) + z φ(z), and the
# parallel residual: dh_out = dh + d attention(LN1(h)) + d MLP(LN2(h)), LN2 reading the block's input
# (the sequential form reads h + attention, as GPT-2's).
import tensorflow as tf

from state_gradients.engine.llama import rotary_tables
from state_gradients.engine.transformer import (Chunk, TransformerStateGradients, _rows_matmul, attention_primal,
                                                layer_norm_tangent, output_vectors, split_heads)
from state_gradients.models import neox


class NeoXStateGradients(TransformerStateGradients):
    """Jacobians of the residual stream after block `layer` (component 0) or of the final LayerNorm's output
    (component 1, top block only) w.r.t. the input embeddings of the same window; forward mode only."""

    def _primal(self, inputs, labels=None):
        model, dtype = self.forward_model, self.model.dtype
        cast = lambda t: tf.cast(t, dtype)  # noqa: E731
        steps = tf.shape(inputs)[1]
        h = model.embed(inputs)
        cos, sin = model.rope(tf.range(steps)[None])
        blocks = []
        for layer in range(self.layer + 1 if labels is None else model.num_layers):
            p = model.layers[layer]
            x_hat1, inv1 = neox.normalise(h, model.norm_epsilon)
            h_next, acts = neox.layer_forward(p, h, model.block_shape, cos, sin)
            x_hat2, inv2 = neox.normalise(acts["h_mid"], model.norm_epsilon)
            blocks.append({"x_hat1": cast(x_hat1), "inv1": cast(inv1), "x_hat2": cast(x_hat2), "inv2": cast(inv2),
                           **attention_primal(acts, model.num_heads, cast),
                           "slope": cast(neox.gelu_slope(acts["z"]))})
            h = h_next
        final, vectors = None, None
        if self.component == 1 or labels is not None:
            x_hat, inv = neox.normalise(h, model.norm_epsilon)
            final = {"x_hat": cast(x_hat), "inv": cast(inv)}
        if labels is not None:
            vectors = output_vectors(model, h, labels, cast)
        return blocks, final, steps, vectors

    def _chunk_tangent(self, blocks, final, steps, j0, size, vectors=None):
        model = self.model
        delays, heads, dims = len(self.delays), model.num_heads, model.rotary_dims
        chunk = Chunk(j0, size, delays, steps, tf.shape(blocks[0]["x_hat1"])[0])
        at = chunk.at
        cos, sin = rotary_tables(model, chunk)
        dh = tf.tile(tf.eye(model.embedding_size, dtype=model.dtype)[None, :, None, :], [chunk.n, 1, 1, 1])
        chosen = None
        for layer in range(len(blocks)):
            p, prim = model.layers[layer], blocks[layer]
            width = 1 if layer == 0 else delays
            da = layer_norm_tangent(dh, at(prim["x_hat1"], width)[:, None], at(prim["inv1"], width)[:, None],
                                    p["ln1_gain"])
            dq, dk, dv = (split_heads(t, heads) for t in tf.split(_rows_matmul(da, p["qkv_kernel"]), 3, axis=-1))
            c, s = cos[:, :, :width], sin[:, :, :width]
            dq, dk = neox.rotate_part(dq, c, s, dims), neox.rotate_part(dk, c, s, dims)
            do = chunk.attention(prim, dq, dk, dv, heads=heads, head_size=model.head_size, width=width, tri=self._tri)
            dattn = _rows_matmul(do, p["proj_kernel"])                                # [N, M, P, D]
            if width < delays:
                dh = tf.pad(dh, [[0, 0], [0, 0], [0, delays - width], [0, 0]])
            dmid = dh if model.parallel_residual else dh + dattn
            dm = layer_norm_tangent(dmid, at(prim["x_hat2"])[:, None], at(prim["inv2"])[:, None], p["ln2_gain"])
            dz = _rows_matmul(dm, p["fc_kernel"]) * at(prim["slope"])[:, None]
            dh = dh + dattn + _rows_matmul(dz, p["out_kernel"])
            if layer == self.layer:
                chosen = dh
        return chunk.finish(self, chosen, dh, final, vectors, layer_norm_tangent)

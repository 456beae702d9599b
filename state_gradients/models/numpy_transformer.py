"""float64 numpy twin of state_gradients.models.transformer.TransformerLM (forward pass, loss, finite-difference Jacobians)."""
# Shape letters: N windows, T positions, V vocabulary, E embedding, D model size, F feed-forward
# size, A heads, K head size, P perturbations in one batch.
#
# Written from the block's definition (docs/transformer.md), not from the TensorFlow code, so that
# sg-gradient-check and the tests compare the engine with an independent computation: a plain
# loop over heads, the causal softmax by masking, GELU's tanh form, LayerNorm with eps 1e-5.
import numpy as np

from state_gradients.core.errors import UserError

EPS = 1e-5
BLOCK = ("ln1_gain", "ln1_bias", "qkv_kernel", "qkv_bias", "proj_kernel", "proj_bias", "ln2_gain", "ln2_bias",
         "fc_kernel", "fc_bias", "out_kernel", "out_bias")


def _layer_norm(h, gain, bias):
    mean = h.mean(-1, keepdims=True)
    var = ((h - mean) ** 2).mean(-1, keepdims=True)
    return (h - mean) / np.sqrt(var + EPS) * gain + bias


def _gelu(z):
    return 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z ** 3)))


class NumpyTransformer:
    """The Transformer of a weights.npz dict, in float64 numpy."""

    cell_type = "Transformer"
    state_names = ("residual", "final")   # the two states grad_interm names (component 0 and 1)

    def __init__(self, weights, source="weights"):
        self.weights = {name: np.asarray(value, np.float64) for name, value in weights.items()
                        if np.asarray(value).dtype.kind == "f" and np.asarray(value).ndim}
        for name in ("embedding", "positions", "final_gain", "final_bias"):
            if name not in self.weights:
                raise UserError(f"{source} has no array {name!r} (not a Transformer weights file)")
        self.num_layers = int(weights["num_layers"])
        self.num_heads = int(weights["num_heads"])
        self.vocab_size, self.embedding_size = self.weights["embedding"].shape
        self.num_steps, self.size = self.weights["positions"].shape
        self.has_output_layer = "softmax_w" in self.weights
        self.source = source

    @classmethod
    def from_npz(cls, path):
        with np.load(path, allow_pickle=False) as f:
            return cls(dict(f), source=path)

    def perturbed(self, name, index, delta):
        """A copy with weights[name][index] += delta."""
        weights = {n: w.copy() for n, w in self.weights.items()}
        weights[name][index] += delta
        twin = NumpyTransformer.__new__(NumpyTransformer)
        twin.__dict__.update(self.__dict__)
        twin.weights = weights
        return twin

    def embed(self, inputs):
        return self.weights["embedding"][np.asarray(inputs)]

    def block(self, layer, h):
        """h [N, T, D] -> the residual stream after block `layer`."""
        w = {name: self.weights[f"layer{layer}/{name}"] for name in BLOCK}
        a = _layer_norm(h, w["ln1_gain"], w["ln1_bias"])
        q, k, v = np.split(a @ w["qkv_kernel"] + w["qkv_bias"], 3, axis=-1)
        steps, size = h.shape[1], self.size // self.num_heads
        future = np.triu(np.ones((steps, steps), bool), 1)
        heads = []
        for head in range(self.num_heads):
            cols = slice(head * size, (head + 1) * size)
            scores = q[..., cols] @ np.swapaxes(k[..., cols], -1, -2) / np.sqrt(size)     # [N, T, T]
            scores = np.where(future, -np.inf, scores)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            heads.append((scores / scores.sum(-1, keepdims=True)) @ v[..., cols])
        h = h + np.concatenate(heads, -1) @ w["proj_kernel"] + w["proj_bias"]
        m = _layer_norm(h, w["ln2_gain"], w["ln2_bias"])
        return h + _gelu(m @ w["fc_kernel"] + w["fc_bias"]) @ w["out_kernel"] + w["out_bias"]

    def states(self, x):
        """x [N, T, E] -> (per block the residual stream [N, T, D], the final LayerNorm's output [N, T, D])."""
        h = x @ self.weights["input_kernel"] if "input_kernel" in self.weights else x
        h = h + self.weights["positions"][: x.shape[1]]
        streams = []
        for layer in range(self.num_layers):
            h = self.block(layer, h)
            streams.append(h)
        return streams, _layer_norm(h, self.weights["final_gain"], self.weights["final_bias"])

    def state(self, x, layer, component):
        streams, final = self.states(x)
        return final if component == 1 else streams[layer]

    def loss(self, inputs, targets, state=None):
        """Sum of the token cross entropies / N (the training loss with the windows as batch rows); `state` is
        accepted for the gradient check's loss interface and ignored (windows carry no state)."""
        del state
        if not self.has_output_layer:
            raise UserError(f"{self.source} has no output layer: there is no loss")
        _, final = self.states(self.embed(inputs))
        logits = final @ self.weights["softmax_w"] + self.weights["softmax_b"]
        top = logits.max(-1, keepdims=True)
        log_z = np.log(np.exp(logits - top).sum(-1)) + top[..., 0]
        picked = np.take_along_axis(logits, np.asarray(targets)[..., None], -1)[..., 0]
        return float((log_z - picked).sum() / logits.shape[0])


def finite_difference_state_gradients(net, x, layer, component, t, max_delay, eps):
    """{k: [N, D, E]} of d s_t / d x_{t-k} by fourth-order central differences on the numpy twin.

    Only positions 0..t enter s_t (causal attention), so the windows are cut there; the 4 E
    perturbations of one source position run as one batch.
    """
    x = np.asarray(x, np.float64)[:, : t + 1]
    n, e = x.shape[0], x.shape[2]
    out = {}
    for k in range(min(max_delay, t + 1)):
        j = t - k
        rows = []
        for window in range(n):
            batch = np.repeat(x[window][None], 4 * e, axis=0)                      # [P, T, E]
            for i, step in enumerate((-2, -1, 1, 2)):
                batch[i * e + np.arange(e), j, np.arange(e)] += step * eps
            s = net.state(batch, layer, component)[:, t]                           # [P, D]
            m2, m1, p1, p2 = (s[i * e:(i + 1) * e] for i in range(4))
            rows.append(((m2 - p2) + 8 * (p1 - m1)).T / (12 * eps))                  # [D, E]
        out[k] = np.stack(rows)
    return out

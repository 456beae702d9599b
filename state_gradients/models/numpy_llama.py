"""float64 numpy twin of state_gradients.models.llama.LlamaLM (forward pass, loss), written from the block's definition."""
# Shape letters: N windows, T positions, V vocabulary, D model size, F feed-forward size, A query
# heads, G key/value heads, K head size.
#
# Independent of the TensorFlow code: a loop over query heads, each reading its key/value head
# a // (A / G); rotary positions as a rotation of the pairs (i, i + K/2) by the angle
# t / scale * base^(-2i / K) (Hugging Face's rotate-half layout written out); the causal softmax by
# masking; RMSNorm and SiLU from their formulas.
import numpy as np

from state_gradients.core.errors import UserError

BLOCK = ("attn_norm", "q_kernel", "k_kernel", "v_kernel", "o_kernel", "mlp_norm", "gate_kernel", "up_kernel",
         "down_kernel")


def _rms(h, gain, eps):
    return h / np.sqrt((h ** 2).mean(-1, keepdims=True) + eps) * gain


def _rotary(x, base, scale):
    """x [N, T, K] rotated pair by pair: (x_i, x_{i+K/2}) by angle t / scale * base^(-2i/K)."""
    steps, size = x.shape[1], x.shape[2]
    half = size // 2
    angle = np.arange(steps)[:, None] / scale * base ** (-2.0 * np.arange(half) / size)      # [T, K/2]
    c, s = np.cos(angle), np.sin(angle)
    first, second = x[..., :half], x[..., half:]
    return np.concatenate([first * c - second * s, second * c + first * s], -1)


class NumpyLlama:
    """The Llama-layout model of a weights.npz dict, in float64 numpy."""

    cell_type = "Llama"
    state_names = ("residual", "final")

    def __init__(self, weights, source="weights"):
        self.weights = {name: np.asarray(value, np.float64) for name, value in weights.items()
                        if np.asarray(value).dtype.kind == "f" and np.asarray(value).ndim}
        for name in ("embedding", "final_gain", "num_heads", "num_kv_heads", "head_size"):
            if name not in weights:
                raise UserError(f"{source} has no array {name!r} (not a Llama weights file)")
        self.num_layers = int(weights["num_layers"])
        self.heads, self.kv_heads = int(weights["num_heads"]), int(weights["num_kv_heads"])
        self.head_size = int(weights["head_size"])
        self.base, self.scale = float(weights["rope_base"]), float(weights["rope_scale"])
        self.eps = float(weights["norm_epsilon"])
        self.tied = bool(weights["tied"]) if "tied" in weights else False
        self.source = source

    def embed(self, inputs):
        return self.weights["embedding"][np.asarray(inputs)]

    def block(self, layer, h):
        """h [N, T, D] -> the residual stream after block `layer`."""
        w = {name: self.weights[f"layer{layer}/{name}"] for name in BLOCK}
        a = _rms(h, w["attn_norm"], self.eps)
        q, k, v = a @ w["q_kernel"], a @ w["k_kernel"], a @ w["v_kernel"]
        size, steps = self.head_size, h.shape[1]
        future = np.triu(np.ones((steps, steps), bool), 1)
        heads = []
        for head in range(self.heads):
            g = head // (self.heads // self.kv_heads)
            qh = _rotary(q[..., head * size:(head + 1) * size], self.base, self.scale)
            kh = _rotary(k[..., g * size:(g + 1) * size], self.base, self.scale)
            scores = np.where(future, -np.inf, qh @ np.swapaxes(kh, -1, -2) / np.sqrt(size))
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            heads.append((scores / scores.sum(-1, keepdims=True)) @ v[..., g * size:(g + 1) * size])
        h = h + np.concatenate(heads, -1) @ w["o_kernel"]
        m = _rms(h, w["mlp_norm"], self.eps)
        gate = m @ w["gate_kernel"]
        return h + (gate / (1.0 + np.exp(-gate)) * (m @ w["up_kernel"])) @ w["down_kernel"]

    def states(self, x):
        """x [N, T, D] -> (per block the residual stream [N, T, D], the final RMSNorm's output [N, T, D])."""
        h, streams = np.asarray(x, np.float64), []
        for layer in range(self.num_layers):
            h = self.block(layer, h)
            streams.append(h)
        return streams, _rms(h, self.weights["final_gain"], self.eps)

    def state(self, x, layer, component):
        streams, final = self.states(x)
        return final if component == 1 else streams[layer]

    def log_probs(self, inputs):
        """log p(w | the window's words up to t) [N, T, V]."""
        _, final = self.states(self.embed(inputs))
        head = self.weights["embedding"].T if self.tied else self.weights.get("softmax_w")
        if head is None:
            raise UserError(f"{self.source} has no output layer")
        logits = final @ head
        top = logits.max(-1, keepdims=True)
        return logits - (np.log(np.exp(logits - top).sum(-1, keepdims=True)) + top)

    def loss(self, inputs, targets, state=None):
        """Sum of the token cross entropies / N (as NumpyTransformer.loss)."""
        del state
        picked = np.take_along_axis(self.log_probs(inputs), np.asarray(targets)[..., None], -1)[..., 0]
        return float(-picked.sum() / picked.shape[0])

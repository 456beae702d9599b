"""The TensorFlow side of the perturbation measure: Adam on log sigma for any Phi, and Phi = an LM state."""
# Shape letters: W windows (independent problems) optimised together, S noise samples per step,
# D input positions of Phi (delays), E embedding, H state, K output size of Phi, N windows of the
# validation pass, B batch rows, T window length, C classes (overall first, then one per class file).
#
# The loss (one problem; x = x_1..x_D the inputs of Phi, theta_i = log sigma_i the parameters):
#
#     L(theta) = (1/S) sum_s ||Phi(x + sigma o eps_s) - Phi(x)||^2 / s2  -  scale * sum_i log sigma_i
#
# eps_s ~ N(0, I) of x's shape, drawn afresh at every step (seeded); sigma o eps multiplies the
# E values of position i by sigma_i (one sigma per position, shared over its E dimensions), or,
# with per_dim, by sigma_ie, where then `sum_i log sigma_i` reads `sum_i mean_e log sigma_ie` (the
# same loss when all sigma_ie of a position agree). s2 = sum_k Var(Phi_k) over sampled inputs
# (phi_variance). Minimised by Adam on theta, projected onto theta <= log max_sigma after every step;
# the result is exp of theta averaged over the last quarter of the steps.
#
# For a linear Phi(x) = sum_i w_i x_i the optimum is sigma_i^2 = scale * s2 / (2 E w_i^2); in
# general, while the noise stays in Phi's linear range, sigma_i = sqrt(scale * s2 / 2) / ||J_i||_F
# with J_i = d Phi / d x_i: for an RNN state, the reciprocal Frobenius norm of the state gradient.
#
# The model tool: Phi(x) = s_t (one layer's c or h at position t of a validation window) as a
# function of the D = min(max_delay, t + 1) embeddings x_{t-D+1..t}, with the earlier inputs and
# the state entering the window held fixed (the state carried through the validation pass, as in
# the gradient pass), dropout off. Delay k is position t - k, i.e. row D - 1 - k of x.
import numpy as np
import tensorflow as tf

from state_gradients.passes import measure_setup

BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8   # Adam's usual constants


# --------------------------------------------------------------------------------------------
# The method, for any Phi
# --------------------------------------------------------------------------------------------

def phi_variance(outputs):
    """s2 = sum over output units of the unit's variance (ddof 1) over sampled inputs: outputs [N, K...]."""
    outputs = np.asarray(outputs, dtype=np.float64)
    outputs = outputs.reshape(outputs.shape[0], -1)
    if outputs.shape[0] < 2:
        raise ValueError("the variance of Phi needs outputs of at least 2 sampled inputs")
    return float(outputs.var(axis=0, ddof=1).sum())


def batch_phi(phi):
    """Turn phi: x [D, ...] -> [K...] into the batched form ([W, S, D, ...], args) -> [W, S, K]."""
    def batched(xt, args):
        del args
        shape = tf.shape(xt)
        flat = tf.reshape(xt, tf.concat([[-1], shape[2:]], 0))
        out = tf.vectorized_map(phi, flat)
        return tf.reshape(out, [shape[0], shape[1], -1])
    return batched


class SigmaLearner:
    """Adam on log sigma for W independent problems at once (their losses are summed; Adam is elementwise).

    phi_batched(xt [W, S, D, ...], args) -> [W, S, K]; args is passed through unchanged (e.g.
    per-window states, leading dimension W). The step is traced once per input shape, so one
    learner serves many calls of fit().
    """

    def __init__(self, phi_batched, *, scale, lr, samples, per_dim=False, max_sigma=None):
        if scale <= 0 or lr <= 0 or samples < 1:
            raise ValueError("scale and lr must be > 0 and samples >= 1")
        if max_sigma is not None and max_sigma <= 0:
            raise ValueError("max_sigma must be > 0")
        self.phi, self.scale, self.lr, self.samples = phi_batched, float(scale), float(lr), int(samples)
        self.per_dim, self.max_sigma = per_dim, max_sigma
        self._step = tf.function(self._step_eager, reduce_retracing=True)
        self._phi0 = tf.function(lambda x, args: self.phi(x[:, None], args)[:, 0], reduce_retracing=True)

    def _sigma_shape(self, theta, x):
        """theta [W, D] or [W, D, ...] -> broadcastable to the noise [W, S, D, ...]."""
        if self.per_dim:
            return theta[:, None]
        extra = tf.ones([tf.rank(x) - 2], tf.int32)
        return tf.reshape(theta, tf.concat([tf.shape(theta)[:1], [1], tf.shape(theta)[1:2], extra], 0))

    def _loss(self, theta, x, y0, seeds, it, phi_var, args):
        """Per-problem loss [W] at theta, with the noise of step `it`."""
        noise_shape = tf.concat([[self.samples], tf.shape(x)[1:]], 0)

        def draw(seed):  # one problem's noise: the seed folds in the step, so chunking changes nothing
            return tf.random.stateless_normal(noise_shape, tf.random.experimental.stateless_fold_in(seed, it),
                                              dtype=x.dtype)

        eps = tf.map_fn(draw, seeds, fn_output_signature=x.dtype)            # [W, S, D, ...]
        sigma = tf.exp(self._sigma_shape(theta, x))
        diff = self.phi(x[:, None] + sigma * eps, args) - y0[:, None]          # [W, S, K]
        distortion = tf.reduce_mean(tf.reduce_sum(tf.square(diff), -1), 1) / phi_var
        log_sigma = theta
        if self.per_dim and theta.shape.rank > 2:
            log_sigma = tf.reduce_mean(tf.reshape(theta, [tf.shape(theta)[0], tf.shape(theta)[1], -1]), -1)
        return distortion - self.scale * tf.reduce_sum(log_sigma, 1)

    def _step_eager(self, theta, m, v, it, x, y0, seeds, phi_var, args):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            loss = self._loss(theta, x, y0, seeds, it, phi_var, args)
            total = tf.reduce_sum(loss)
        grad = tape.gradient(total, theta)
        m = BETA1 * m + (1 - BETA1) * grad
        v = BETA2 * v + (1 - BETA2) * tf.square(grad)
        t = tf.cast(it + 1, theta.dtype)
        m_hat, v_hat = m / (1 - BETA1 ** t), v / (1 - BETA2 ** t)
        theta = theta - self.lr * m_hat / (tf.sqrt(v_hat) + ADAM_EPS)
        if self.max_sigma is not None:
            theta = tf.minimum(theta, tf.cast(np.log(self.max_sigma), theta.dtype))
        return theta, m, v, loss

    def fit(self, x, phi_var, *, steps, seed, init_sigma=1.0, window_ids=None, args=(), progress=None):
        """x [W, D, ...] -> (sigma [W, D] (per_dim: x's shape), losses [steps, W] before each update).

        sigma = exp of the mean of log sigma over the last quarter of the steps (Polyak
        averaging: the noisy gradient keeps single iterates jittering around the optimum).

        window_ids [W] (default 0..W-1) and seed fix each problem's noise; init_sigma is the
        starting sigma of every position (clipped to max_sigma).
        """
        if steps < 1 or phi_var <= 0 or init_sigma <= 0:
            raise ValueError("steps must be >= 1, phi_var and init_sigma > 0")
        x = tf.convert_to_tensor(x)
        if x.shape.rank < 2:
            raise ValueError("x must be [W, D, ...]")
        w = int(x.shape[0])
        ids = np.arange(w) if window_ids is None else np.asarray(window_ids)
        seeds = tf.constant(np.stack([np.full(w, seed), ids], 1), tf.int64)
        start = np.log(init_sigma if self.max_sigma is None else min(init_sigma, self.max_sigma))
        theta = tf.fill(x.shape if self.per_dim else x.shape[:2], tf.cast(start, x.dtype))
        m = v = tf.zeros_like(theta)
        phi_var = tf.constant(phi_var, x.dtype)
        y0 = self._phi0(x, args)
        losses = np.empty((steps, w))
        tail = max(1, steps // 4)
        theta_sum = 0.0
        for it in range(steps):
            theta, m, v, loss = self._step(theta, m, v, tf.constant(it, tf.int64), x, y0, seeds, phi_var, args)
            losses[it] = loss.numpy()
            if it >= steps - tail:
                theta_sum = theta_sum + theta.numpy()
            if progress is not None:
                progress()
        return np.exp(theta_sum / tail), losses


def learn_sigmas(phi, x, phi_var, *, scale, steps, lr, samples, seed, init_sigma=1.0, max_sigma=None,
                 per_dim=False, return_losses=False):
    """Learned sigma [D] (per_dim: x's shape) of phi: x [D, ...] -> [K...] at x (the module comment's loss).

    phi_var: s2, e.g. phi_variance of phi's outputs over sampled inputs. return_losses: also
    the loss before each of the `steps` updates, [steps].
    """
    learner = SigmaLearner(batch_phi(phi), scale=scale, lr=lr, samples=samples, per_dim=per_dim,
                           max_sigma=max_sigma)
    sigma, losses = learner.fit(tf.convert_to_tensor(x)[None], phi_var, steps=steps, seed=seed,
                                init_sigma=init_sigma)
    return (sigma[0], losses[:, 0]) if return_losses else sigma[0]


def sigma_per_position(sigma):
    """[W, D, ...] -> [W, D]: per_dim sigmas summarised by their geometric mean (exp of the mean log)."""
    sigma = np.asarray(sigma)
    if sigma.ndim == 2:
        return sigma
    return np.exp(np.log(sigma.reshape(sigma.shape[0], sigma.shape[1], -1)).mean(-1))


# --------------------------------------------------------------------------------------------
# Phi = a state of the language model
# --------------------------------------------------------------------------------------------

def state_phi(model, layer, component):
    """Batched Phi: (xt [W, S, D, E], state entering position t-D+1: per layer tuple of [W, H]) -> s_t [W, S, H]."""
    def phi(xt, state):
        shape = tf.shape(xt)
        x = tf.reshape(xt, [-1, shape[2], shape[3]])
        for l in range(layer + 1):
            seq = model.run_layer(l, x, tuple(tf.repeat(s, shape[1], axis=0) for s in state[l]))
            x = seq[-1]   # the next layer reads this layer's h
        return tf.reshape(seq[component][:, -1], [shape[0], shape[1], -1])
    return phi


def pass_states(model, windows, layer, component, t, first):
    """Forward pass over the validation windows [N, B, T], state carried from batch to batch.

    Returns s_t of every window [N*B, H] and the state (all layers) entering position `first`
    of every window: per layer tuple of [N*B, H] (the entering state itself when first = 0).
    """
    forward = measure_setup.make_forward_step(model)
    n, b, _ = windows.shape
    state = model.zero_state(b)
    targets, before = [], []
    for i in range(n):
        all_states, final = forward(windows[i].astype(np.int32), state)
        targets.append(all_states[layer][component][:, t].numpy())
        if first == 0:
            before.append(tuple(tuple(s.numpy() for s in l) for l in state))
        else:
            before.append(tuple(tuple(s[:, first - 1].numpy() for s in l) for l in all_states))
        state = final
    enter = tuple(tuple(np.concatenate([bt[l][c] for bt in before]) for c in range(len(before[0][l])))
                  for l in range(len(before[0])))
    return np.concatenate(targets), enter

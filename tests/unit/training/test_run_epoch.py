"""run_epoch: pass perplexities against the numpy model, TF1 optimizer updates, clipping, sampler, seeded dropout."""
import math

import numpy as np
import pytest
import tensorflow as tf

from state_gradients.core import lm_data
from state_gradients.models.lm import LanguageModel
from state_gradients.training import optimizers, run_epoch, sampled_softmax
from tests import numpy_reference as ref

CELLS = ["LSTM", "GRU", "RNN", "GRU_RESET_AFTER"]
V, E, H = 13, 5, 6


def _model(cell, dtype=tf.float32, layers=2, vocab=V):
    return LanguageModel(vocab, E, H, layers, cell, forget_bias=0.4, init_scale=0.5, dtype=dtype)


def _ids(n, vocab=V, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, n).astype(np.int32)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_window_pass_matches_numpy_reference(cell, jit):
    model, ids = _model(cell), _ids(150)
    got = run_epoch.evaluate(model, ids, 3, 4, step=run_epoch.make_eval_step(model, jit_compile=jit))
    want = ref.perplexity(model.weights_numpy(), ids, 3, 4)
    assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_chunked_test_pass_equals_token_by_token(cell):
    model, ids = _model(cell), _ids(60)
    want = ref.perplexity(model.weights_numpy(), ids, 1, 1)
    for chunk in (7, 59, run_epoch.TEST_CHUNK):
        assert run_epoch.evaluate(model, ids, 1, 1, chunk=chunk) == pytest.approx(want, rel=1e-5)


def test_evaluation_batches_chunks_cover_the_t1_windows():
    ids = np.arange(23, dtype=np.int32)
    chunks = run_epoch.evaluation_batches(ids, 1, 1, chunk=10)
    assert [x.shape for x, _ in chunks] == [(1, 10), (1, 10), (1, 2)]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in chunks], 1)[0], ids[:-1])
    np.testing.assert_array_equal(np.concatenate([y for _, y in chunks], 1)[0], ids[1:])
    windows = run_epoch.evaluation_batches(ids, 2, 3)
    inputs, targets = lm_data.make_windows(ids, 2, 3)
    assert len(windows) == len(inputs) == 2
    np.testing.assert_array_equal(windows[1][1], targets[1])


def test_token_losses_equal_sparse_softmax_cross_entropy():
    model = _model("LSTM", tf.float64)
    outputs = tf.constant(np.random.default_rng(1).normal(size=(2, 3, H)))
    targets = tf.constant(_ids(6).reshape(2, 3))
    np.testing.assert_allclose(model.token_losses(outputs, targets).numpy(),
                               tf.nn.sparse_softmax_cross_entropy_with_logits(
                                   labels=targets, logits=model.logits(outputs)).numpy(), rtol=1e-12)


def _window(seed=3, batch=3, steps=4):
    ids = _ids(batch * steps + 1, seed=seed)
    inputs, targets = lm_data.make_windows(np.concatenate([ids, ids]), batch, steps)
    return inputs[0], targets[0]


def test_sgd_step_clips_by_global_norm_with_embedding_slices():
    """One step = w - lr * g * max_norm / norm, the norm counting each token's embedding row (TF1)."""
    model = _model("LSTM", tf.float64)
    inputs, targets = _window()
    before = {v.name: v.numpy() for v in model.trainable_variables}
    # independent gradient: the sparse-softmax loss of lm.py, dense gradients, per-token x gradients
    with tf.GradientTape(persistent=True) as tape:
        x = model.embed(inputs)
        tape.watch(x)
        states = model.run_layers(x, model.zero_state(3))
        cost = tf.reduce_sum(model.token_losses(states[-1][-1], targets)) / 3
    others = [v for v in model.trainable_variables if v is not model.embedding]
    grads = {v.name: g.numpy() for v, g in zip(others, tape.gradient(cost, others))}
    per_token = tape.gradient(cost, x).numpy()                        # [B, T, E]
    dense_embedding = np.zeros((V, E))
    np.add.at(dense_embedding, inputs.ravel(), per_token.reshape(-1, E))
    grads[model.embedding.name] = dense_embedding
    norm = math.sqrt(sum((g ** 2).sum() for n, g in grads.items() if n != model.embedding.name)
                     + (per_token ** 2).sum())
    max_norm, lr = 0.05, 0.75  # lr exact in float32 (the learning-rate variable is float32, as in TF1)
    assert norm > max_norm  # clipping is active

    optimizer = optimizers.Optimizer("sgd", model.trainable_variables, lr)
    step = run_epoch.make_train_step(model, optimizer, tf.random.Generator.from_seed(1), batch_size=3,
                                     num_steps=4, keep_prob=1.0, max_grad_norm=max_norm, jit_compile=False)
    got_cost, _ = step(inputs, targets, model.zero_state(3))
    assert float(got_cost) == pytest.approx(float(cost), rel=1e-10)
    for v in model.trainable_variables:
        np.testing.assert_allclose(v.numpy(), before[v.name] - lr * grads[v.name] * max_norm / norm,
                                   rtol=1e-9, atol=1e-12)


def _tf1_adam(w, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    """TF1 AdamOptimizer; its beta powers and step size lr_t are float32 (the lr's dtype)."""
    f32 = np.float32
    m = v = np.zeros_like(w)
    b1_power, b2_power = f32(b1), f32(b2)
    for g in grads:
        alpha = float(f32(lr) * np.sqrt(f32(1) - b2_power) / (f32(1) - b1_power))
        b1_power, b2_power = b1_power * f32(b1), b2_power * f32(b2)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        w = w - alpha * m / (np.sqrt(v) + eps)
    return w


def _tf1_adagrad(w, grads, lr, initial=0.1):
    acc = np.full_like(w, initial)
    for g in grads:
        acc = acc + g * g
        w = w - float(np.float32(lr)) * g / np.sqrt(acc)
    return w


@pytest.mark.parametrize("kind, formula", [("adam", _tf1_adam), ("adagrad", _tf1_adagrad)])
def test_adam_and_adagrad_follow_tf1_formulas(kind, formula):
    rng = np.random.default_rng(2)
    w0 = rng.normal(size=(4, 3))
    grads = [rng.normal(size=(4, 3)) * 10 ** -k for k in range(4)]   # includes tiny gradients (epsilon)
    dense, sparse = tf.Variable(w0), tf.Variable(w0)
    opt_dense = optimizers.Optimizer(kind, [dense], 0.01)
    opt_sparse = optimizers.Optimizer(kind, [sparse], 0.01)
    for g in grads:
        opt_dense.apply([tf.constant(g)], [dense])
        # rows 0 and 2 as slices with a duplicated index: summed, as TF1 deduplicated them
        half = g[[0, 2, 2]] * np.array([[1.0], [0.5], [0.5]])
        slices = tf.IndexedSlices(tf.constant(np.concatenate([half, g[[1, 3]]])), tf.constant([0, 2, 2, 1, 3]),
                                  tf.constant([4, 3]))
        opt_sparse.apply([slices], [sparse])
    want = formula(w0, grads, 0.01)
    np.testing.assert_allclose(dense.numpy(), want, rtol=1e-9)
    np.testing.assert_allclose(sparse.numpy(), dense.numpy(), rtol=1e-12)


def test_log_uniform_candidates_are_unique_seeded_and_counted_like_tf():
    labels = tf.constant([[0], [7], [39]], tf.int64)
    seed = tf.constant([4, 5], tf.int64)
    sampled, true_count, sampled_count = sampled_softmax.log_uniform_candidates(labels, 32, 40, seed)
    again = sampled_softmax.log_uniform_candidates(labels, 32, 40, seed)[0]
    other = sampled_softmax.log_uniform_candidates(labels, 32, 40, tf.constant([4, 6], tf.int64))[0]
    s = sampled.numpy()
    assert len(set(s.tolist())) == 32 and s.min() >= 0 and s.max() < 40
    np.testing.assert_array_equal(s, again.numpy())
    assert not np.array_equal(s, other.numpy())

    def prob(c):
        return np.log((c + 2.0) / (c + 1.0)) / np.log(41.0)

    # expected count = 1 - (1 - P)^tries with one number of tries shared by every class
    count = sampled_count.numpy().astype(np.float64)
    valid = count < 0.999   # saturated counts do not determine tries
    tries = np.log1p(-count[valid]) / np.log1p(-prob(s[valid].astype(np.float64)))
    assert tries.min() == pytest.approx(tries.max(), rel=1e-3) and tries[0] >= 32
    t = tries[0]
    np.testing.assert_allclose(true_count.numpy().ravel(), 1 - (1 - prob(np.array([0.0, 7.0, 39.0]))) ** t,
                               rtol=1e-4)


def test_sampled_softmax_needs_32_words():
    from state_gradients.core.errors import UserError

    with pytest.raises(UserError, match="only 20 words"):
        sampled_softmax.check_sampled_softmax(20)


def _train_once(seed, keep_prob=0.5, sampled=False):
    model = _model("GRU", vocab=40)
    optimizer = optimizers.Optimizer("sgd", model.trainable_variables, 1.0)
    step = run_epoch.make_train_step(model, optimizer, tf.random.Generator.from_seed(seed), batch_size=3,
                                     num_steps=4, keep_prob=keep_prob, max_grad_norm=5.0, sampled=sampled)
    ids = _ids(100, vocab=40)
    ppl = run_epoch.train_epoch(step, model, ids, 3, 4)
    return ppl, model.softmax_w.numpy()


def test_dropout_and_samples_follow_the_generator_seed():
    for sampled in (False, True):
        first, again, other = _train_once(1, sampled=sampled), _train_once(1, sampled=sampled), \
            _train_once(2, sampled=sampled)
        assert first[0] == again[0]
        np.testing.assert_array_equal(first[1], again[1])
        assert first[0] != other[0]


def test_no_dropout_training_pass_starts_with_the_evaluation_cost():
    """keep_prob 1, full softmax: the first window's training cost is the evaluation cost of the initial model."""
    model = _model("RNN")
    inputs, targets = _window()
    want, _ = run_epoch.make_eval_step(model)(inputs, targets, model.zero_state(3))
    optimizer = optimizers.Optimizer("sgd", model.trainable_variables, 1.0)
    step = run_epoch.make_train_step(model, optimizer, tf.random.Generator.from_seed(1), batch_size=3,
                                     num_steps=4, keep_prob=1.0, max_grad_norm=5.0)
    got, _ = step(inputs, targets, model.zero_state(3))
    # the training step sums the B*T = 12 float32 token losses in float32 (the evaluation step in float64),
    # in a different tf.function: at most 12 roundings, and a few ulps per token from other kernels
    assert float(got) == pytest.approx(float(want), rel=4 * 12 * 2.0 ** -24)

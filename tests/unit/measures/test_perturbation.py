"""The behavioural measures' core: truncated and full-history losses, a replaced word's effect and its G·Δx."""
import numpy as np
import pytest
import tensorflow as tf

from state_gradients.engine.recurrent import state_gradients
from state_gradients.measures import perturbation
from state_gradients.models.lm import LanguageModel

V, E, H = 23, 5, 7


def _model(cell="LSTM", layers=2):
    # init_scale 0.5: gates far from their linear range, so that second-order terms are visible
    return LanguageModel(V, E, H, layers, cell, forget_bias=1.0, init_scale=0.5, dtype=tf.float64, seed=3)


def _stream(n, seed=0):
    return np.random.default_rng(seed).integers(0, V, size=n).astype(np.int32)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_the_whole_history_as_context_is_the_full_loss(cell):
    # a truncated context that reaches back to the stream's start, from the same zero state, is the full history;
    # float64 with different row counts in the matmuls: equal to rounding (1e-12 of a loss of about 3)
    model = _model(cell)
    stream = _stream(40)
    full, _ = perturbation.stream_losses(model, stream)
    for p in (0, 7, 38):
        got = perturbation.context_losses(model, stream[None, :p + 1], [stream[p + 1]])
        assert abs(got[0] - full[p]) <= 1e-12 * abs(full[p])
    # a shorter context is a different loss (the check can fail)
    short = perturbation.context_losses(model, stream[None, 30:39], [stream[39]])
    assert abs(short[0] - full[38]) > 1e-6


def test_a_small_change_moves_the_state_by_g_times_delta_to_first_order():
    # the remainder ‖Δs − G·δ‖ of a smooth map is O(ε²): halving ε divides it by about 4 (3.2 to 4.8 allows the
    # third-order term at these ε); G·δ comes from forward mode, Δs from two forward passes
    model = _model()
    stream = _stream(12, seed=1)
    ids = np.stack([stream[2:9], stream[3:10]])                  # k = 6: x_{t-6} .. x_t, two rows
    state = model.zero_state(2)
    direction = np.random.default_rng(2).normal(size=(2, E))
    remainders = []
    for eps in (1e-2, 5e-3, 2.5e-3):
        out = perturbation.perturb_first(model, state, ids, eps * direction, layer=1, component=0)
        remainders.append(np.linalg.norm(out["delta_state"] - out["predicted"], axis=1))
    for big, small in zip(remainders, remainders[1:]):
        assert np.all((big / small > 3.2) & (big / small < 4.8)), big / small


def test_the_prediction_is_the_engines_state_gradient():
    # G·Δx of the forward-mode run equals the engine's Jacobian d s_t / d x_{t-k} times Δx (float64: 1e-12)
    model = _model()
    stream = _stream(11, seed=4)
    window = stream[None, :10]
    k, t = 4, 9
    g = state_gradients(model, window, model.zero_state(1), layer=1, component=0, time_steps=[t], max_delay=k + 1)
    targets, jac = g[k]
    assert list(targets) == [t]
    states = model.run_layers(model.embed(tf.constant(window)), model.zero_state(1))
    entering = tuple(tuple(s[:, t - k - 1] for s in layer) for layer in states)   # the state after t - k - 1
    new = np.array([5])
    out = perturbation.replacement_effects(model, entering, window[:, t - k:t + 1], new, layer=1, component=0,
                                           targets=[stream[t + 1]])
    embedding = model.embedding.numpy()
    delta = embedding[5] - embedding[window[0, t - k]]
    np.testing.assert_allclose(out["predicted"][0], jac[0, 0] @ delta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["delta_x"][0], delta, rtol=0, atol=0)
    # the replaced run's loss change equals the stream's losses with and without the replacement
    changed = stream.copy()
    changed[t - k] = 5
    before, _ = perturbation.stream_losses(model, stream)
    after, _ = perturbation.stream_losses(model, changed)
    assert abs(out["delta_loss"][0] - (after[t] - before[t])) < 1e-12


def test_block_sums_give_the_jackknife_of_class_means():
    # two classes over three blocks: the mean and its delete-one-block means against a direct computation
    sums = perturbation.BlockSums(("x",), 3, (1, 2), 2)
    rng = np.random.default_rng(5)
    data = {}
    for block in range(3):
        for delay in (1, 2):
            values = rng.normal(size=6)
            masks = np.array([np.ones(6), (np.arange(6) % 2 == 0).astype(float)])
            sums.add(block, delay, masks, {"x": values})
            data[block, delay] = (values, masks)
    full, loo, counts = sums.means("x")
    for d, delay in enumerate((1, 2)):
        for c in range(2):
            pick = [data[b, delay][0][data[b, delay][1][c] > 0] for b in range(3)]
            assert full[d, c] == pytest.approx(np.concatenate(pick).mean(), abs=1e-15)
            for j in range(3):
                rest = np.concatenate([v for b, v in enumerate(pick) if b != j])
                assert loo[j, d, c] == pytest.approx(rest.mean(), abs=1e-15)
    out = sums.intervals("x")
    assert out["lo"].shape == (2, 2) and np.all(out["lo"] <= out["value"]) and np.all(out["value"] <= out["hi"])
    # the delete-one-block jackknife of a mean: se² = (N - 1) / N · Σ (loo_j - mean(loo))² when the blocks are equal
    for d in range(2):
        se = np.sqrt((3 - 1) / 3 * np.sum((loo[:, d, 0] - loo[:, d, 0].mean()) ** 2))
        assert out["se"][d, 0] == pytest.approx(se, rel=1e-12)
    # a class absent from a block: that block is left out (2 blocks, df 1), not a NaN interval
    sparse = perturbation.BlockSums(("x",), 3, (1,), 2)
    for block, values in ((0, [1.0, 2.0]), (1, [3.0, 5.0]), (2, [4.0, 4.0])):
        sparse.add(block, 1, np.array([[1, 1], [1, 1] if block else [0, 0]]), {"x": values})
    stats = sparse.intervals("x")
    assert stats["df"][0, 1] == 1 and np.isfinite(stats["se"][0, 1]) and stats["value"][0, 1] == pytest.approx(4.0)


def test_dropped_words_are_skipped_exactly():
    # a row with words dropped by the keep mask reads as the same row without them (rows of different kept lengths
    # in one batch); float64 with different row counts: equal to rounding (1e-12)
    model = _model()
    stream = _stream(30, seed=6)
    contexts = np.stack([stream[0:12], stream[5:17], stream[10:22]])
    keep = np.ones((3, 12), bool)
    keep[0, [1, 4, 5]] = False
    keep[2, :7] = False
    targets = stream[[12, 17, 22]]
    got = perturbation.kept_context_losses(model, contexts, keep, targets)
    for r in range(3):
        want = perturbation.context_losses(model, contexts[r][keep[r]][None], targets[r:r + 1])[0]
        assert abs(got[r] - want) <= 1e-12 * abs(want)
    assert abs(got[1] - perturbation.context_losses(model, contexts[1:2], targets[1:2])[0]) <= 1e-12 * abs(got[1])


def test_only_the_far_words_are_rearranged():
    rng = np.random.default_rng(7)
    contexts = np.arange(20).reshape(2, 10)
    shuffled = perturbation.reorder_far(contexts, 3, "shuffled", rng)
    np.testing.assert_array_equal(shuffled[:, -3:], contexts[:, -3:])
    assert all(sorted(a) == sorted(b) for a, b in zip(shuffled[:, :7], contexts[:, :7]))
    assert not np.array_equal(shuffled, contexts)
    np.testing.assert_array_equal(perturbation.reorder_far(contexts, 3, "reversed", rng)[:, :7], contexts[:, 6::-1])

"""minGRU, a family added through the registry: exact state gradients against autodiff, central differences and the
closed form, and a model trained from a config through the gradient pass with every measure."""
import numpy as np
import pytest
import tensorflow as tf

from aux_scripts import intervals as sg_intervals
from state_gradients.core import families, lm_data
from state_gradients.core.configuration import config_from_dict
from state_gradients.engine.recurrent import state_gradients
from state_gradients.measures import intervals
from state_gradients.models.lm import LanguageModel
from state_gradients.passes import gradient_pass


def _setup(layers, rows, seed=0, emb=5, size=4):
    rng = np.random.default_rng(seed)
    model = LanguageModel(13, emb, size, layers, "minGRU", init_scale=0.6, dtype=tf.float64)
    inputs = rng.integers(0, 13, (rows, 7))
    state = tuple((tf.constant(rng.normal(size=(rows, size)), tf.float64),) for _ in range(layers))
    return model, inputs, state


def _numpy_forward(model, xs, h0):
    """Every layer's states [T, H] and the top layer's gate z and candidate h~ [T, H], written from the equations."""
    p = {v.name.split(":")[0]: v.numpy() for v in model.trainable_variables}
    size = model.size
    inp, out = xs, []
    for layer in range(model.num_layers):
        kernel, bias = p[f"layer{layer}/kernel"], p[f"layer{layer}/bias"]
        h, hs, zs, cands = h0[layer], [], [], []
        for x in inp:
            pre = x @ kernel + bias
            z, cand = 1 / (1 + np.exp(-pre[:size])), pre[size:]
            h = (1 - z) * h + z * cand
            hs.append(h), zs.append(z), cands.append(cand)
        out.append((np.array(hs), np.array(zs), np.array(cands)))
        inp = np.array(hs)
    return out


def test_the_family_is_one_registry_line():
    family = families.family("minGRU")
    assert family.stateful and family.interm_names == ("cell", "hidden") and family.state_index("hidden") == 0
    assert type(family.make_cell()).__name__ == "MinGRU"


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_engine_equals_tape_jacobian(layers, mode):
    model, inputs, state = _setup(layers, 3)
    x = model.embed(inputs)
    for layer in range(layers):
        with tf.GradientTape() as tape:
            tape.watch(x)
            s = model.run_layers(x, state)[layer][0]
        jac = tape.jacobian(s, x).numpy()                                 # [R, T, H, R, T, E]
        out = state_gradients(model, inputs, state, layer=layer, component=0, time_steps=list(range(7)),
                              max_delay=5, mode=mode)
        for k, (ts, g) in out.items():
            for i, t in enumerate(ts):
                # float64 throughout; the two differ by the order of a few products (1e-16 relative)
                np.testing.assert_allclose(g[:, i], jac[np.arange(3), t, :, np.arange(3), t - k, :], rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_engine_equals_the_closed_form(mode):
    # d h_t / d x_{t-k} = diag(prod_{i=t-k+1..t} (1 - z_i)) (diag(z) W_h^T + diag(z (1 - z)(h~ - h_prev)) W_z^T)_{t-k}
    model, inputs, state = _setup(1, 1, seed=4)
    xs = model.embed(inputs).numpy()[0]
    h0 = [state[0][0].numpy()[0]]
    (hs, zs, cands), = _numpy_forward(model, xs, h0)
    kernel = model.trainable_variables[[v.name for v in model.trainable_variables].index("layer0/kernel:0")].numpy()
    w_z, w_h = kernel[:, :4], kernel[:, 4:]
    out = state_gradients(model, inputs, state, layer=0, component=0, time_steps=[6], max_delay=6, mode=mode)
    for k, (_, g) in out.items():
        j = 6 - k
        h_prev = hs[j - 1] if j else h0[0]
        local = np.diag(zs[j]) @ w_h.T + np.diag(zs[j] * (1 - zs[j]) * (cands[j] - h_prev)) @ w_z.T
        carry = np.prod(1 - zs[j + 1:7], axis=0) if k else np.ones(4)
        np.testing.assert_allclose(g[0, 0], carry[:, None] * local, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_engine_equals_central_differences(mode):
    model, inputs, state = _setup(2, 1, seed=7)
    xs = model.embed(inputs).numpy()[0]
    h0 = [s[0].numpy()[0] for s in state]
    out = state_gradients(model, inputs, state, layer=1, component=0, time_steps=[6], max_delay=6, mode=mode)
    eps = 1e-6
    for k, (_, g) in out.items():
        fd = np.zeros((4, 5))
        for e in range(5):
            plus, minus = xs.copy(), xs.copy()
            plus[6 - k, e] += eps
            minus[6 - k, e] -= eps
            fd[:, e] = (_numpy_forward(model, plus, h0)[1][0][6] - _numpy_forward(model, minus, h0)[1][0][6]) / (2 * eps)
        # central differences: truncation O(eps^2 |h'''|) and rounding u |h| / eps, both about 1e-10 here
        np.testing.assert_allclose(g[0, 0], fd, rtol=0, atol=1e-8)


def test_a_trained_mingru_goes_through_the_pass_with_every_measure(tiny_tagged_corpus):
    from tf_scripts.main import main

    root = tiny_tagged_corpus(valid_lines=30)
    base = dict(save_path=str(root / "model"), log_dir=str(root / "logs"), data_path=str(root / "data"), vocab=False,
                batch_size=2, num_steps=6, size=6, embedding_size=4, basic_cell="minGRU", num_layers=1,
                init_scale=0.3, softmax="full", max_max_epoch=2, learning_rate=0.5, max_grad_norm=5, lr_decay=0.9,
                max_epoch=1, dropout=1.0, optimizer="sgd", trainer="trainer", forget_bias=0.0)
    lines = "".join(f"{k} {v}\n" for k, v in base.items())
    (root / "train.config").write_text(lines)
    assert main(["--config", str(root / "train.config"), "--notest"]) == 0
    np.save(root / "D.npy", np.eye(4) * 0.5)
    grads = dict(base, batch_size=1, grad_interm="hidden", time_step="all", max_delay=3, grad_dir=str(root / "g"),
                 grad_average=True, grad_dump=False, grad_blocks=4, grad_norm_file=str(root / "D.npy"),
                 pos_mapping=str(root / "pos_mapping.txt"), pos_classes=f"{root / 'nouns.txt'},{root / 'verbs.txt'}")
    config = config_from_dict(grads, train=False)
    corpus = lm_data.load_corpus(config, need_train=True, need_valid=True, need_test=False)
    from state_gradients.files.saved_model import SavedModel

    model = LanguageModel.from_config(config, corpus.vocab_size)
    SavedModel.from_config(config).restore_into(config, model, corpus.word_to_id)
    assert model.cell_type == "minGRU"
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    assert sg_intervals.main([str(root / "g"), str(root / "D.npy"), "--out", str(root / "out")]) == 0
    rows = intervals.read_csv(str(root / "out" / intervals.INTERVALS_CSV), intervals.INTERVAL_COLUMNS)
    for r in rows:
        assert r["class"] in ("overall", "nouns", "verbs") and r["count"] > 0
        for column in ("sv_sum", "magnitude_sq", "occ_nuclear", "output_norm"):
            assert np.isfinite(r[column]) and r[column] > 0, (r["class"], r["delay"], column)
    # the saved weights come back as a minGRU of the same size (the size solved from its [E, 2H] kernel)
    saved = SavedModel.from_config(config)
    path = saved.write_weights(model, corpus.word_to_id)
    again = saved.load()
    assert again.cell_type == "minGRU" and again.size == 6 and path

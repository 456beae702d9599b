"""The public API (state_gradients): a profile equals the CLI pass's files, round trips, loads models, measures, plots."""
# Shape letters: C classes, D delays, H state, E embedding.
import filecmp
import os
import shutil

import numpy as np
import pytest

import state_gradients as sg
from aux_scripts import intervals as sg_intervals
from state_gradients.core.configuration import config_from_dict
from state_gradients.files import gradient_files
from state_gradients.measures import intervals
from state_gradients.measures import analysis
from tf_scripts import main as lm_main

U32 = 2.0 ** -24    # float32 unit roundoff


def _config_file(root, **keys):
    """A config file of the tiny corpus's gradient pass (LSTM H 4, E 3, 4 blocks) and a saved model for it."""
    values = dict(save_path=str(root / "model"), log_dir=str(root / "logs"), data_path=str(root / "data"),
                  vocab=False, batch_size=2, num_steps=6, size=4, embedding_size=3, basic_cell="LSTM",
                  num_layers=1, init_scale=0.5, softmax="full", forget_bias=0.2, grad_interm="cell",
                  time_step="all", max_delay=3, grad_dir=str(root / "grads"), grad_dtype="float64",
                  grad_average=True, grad_dump=False, grad_blocks=4, pos_mapping=str(root / "pos_mapping.txt"),
                  pos_classes=f"{root / 'nouns.txt'},{root / 'verbs.txt'}")
    values.update(keys)
    path = str(root / "grad.config")
    config_from_dict(values, train=False).save(path)
    # the seeded initial weights, exported: the CLI and the API restore the same weights.npz + dict
    assert lm_main.main(["--notrain", "--fresh_weights", "--export_weights", "--config", path]) == 0
    return path


@pytest.fixture
def setup(tiny_tagged_corpus):
    root = tiny_tagged_corpus(valid_lines=14)
    return root, _config_file(root)


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, _, names in os.walk(root) for n in names)


def _assert_same_blocks(a, b):
    for x, y in zip(gradient_files.read_blocks(a), gradient_files.read_blocks(b), strict=True):
        assert sorted(x) == sorted(y)
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_the_profile_of_a_config_is_the_cli_pass_and_saves_the_same_files(setup):
    root, path = setup
    profile = sg.MemoryProfile.compute(path, log=lambda line: None)
    shutil.move(root / "grads", root / "api")
    assert lm_main.main(["--notrain", "--notest", "--config", path]) == 0
    cli, api = str(root / "grads"), str(root / "api")
    assert _tree(cli) == _tree(api)
    # counts, the progress record and the float32 averages byte for byte (np.save of the same arrays)
    same, different, errors = filecmp.cmpfiles(cli, api, [f for f in _tree(cli) if not f.startswith("blocks")],
                                               shallow=False)
    assert not different and not errors and same
    _assert_same_blocks(cli, api)      # the .npz zip headers carry write times: compare the arrays
    # save() writes the same files again, and load() reads any of them back to the same profile
    profile.save(str(root / "saved"))
    assert _tree(str(root / "saved")) == _tree(cli)
    same, different, errors = filecmp.cmpfiles(cli, str(root / "saved"),
                                               [f for f in _tree(cli) if not f.startswith("blocks")], shallow=False)
    assert not different and not errors
    _assert_same_blocks(cli, str(root / "saved"))
    for folder in (cli, str(root / "saved")):
        again = sg.MemoryProfile.load(folder)
        assert again.classes == profile.classes == ["overall", "nouns", "verbs"] and again.delays == [0, 1, 2]
        np.testing.assert_array_equal(again.averages, profile.averages)
        np.testing.assert_array_equal(again.counts, profile.counts)
        assert again.progress == profile.progress


def test_save_and_load_refuse_what_is_not_a_profile(setup, tmp_path):
    root, path = setup
    profile = sg.MemoryProfile.compute(path, log=lambda line: None)
    with pytest.raises(sg.UserError, match="not empty"):
        profile.save(str(root / "grads"))
    with pytest.raises(sg.UserError, match="grad_progress.json not found"):
        sg.MemoryProfile.load(str(tmp_path))
    no_blocks = sg.MemoryProfile.compute(path, log=lambda line: None, grad_blocks=None, grad_dir=str(root / "nb"))
    with pytest.raises(sg.UserError, match="grad_blocks"):
        no_blocks.sv_intervals(np.eye(3))
    with pytest.raises(sg.UserError, match="grad_interm and grad_average"):
        sg.MemoryProfile.compute(path, log=lambda line: None, grad_average=False, grad_dump=True, grad_blocks=None,
                                 pos_classes=None, pos_mapping=None, grad_dir=str(root / "dump"))


def test_measures_of_a_profile_agree_with_numpy(setup):
    root, path = setup
    profile = sg.MemoryProfile.compute(path, log=lambda line: None)
    model = sg.load_model(path, log=lambda line: None)
    norm = sg.normalisation(model)
    emb = model.embedding.astype(np.float64)
    np.testing.assert_allclose(norm.d_factor @ norm.d_factor.T, np.cov(emb, rowvar=False), rtol=1e-12, atol=1e-14)
    d = norm.d_factor
    sums = profile.sv_sums(d)
    for c, d_i in zip(*np.nonzero(profile.counts)):
        want = np.linalg.svd(profile.averages[c, d_i].astype(np.float64) @ d, compute_uv=False).sum()
        assert sums[c, d_i] == pytest.approx(want, rel=1e-12)
    # the SV sums with intervals: sg-intervals' rows, and the generic jackknife of the same statistic (whose se is
    # the same ordinary jackknife's; its estimate is not bias-corrected here, sg-intervals' bias is simulated)
    est = profile.sv_intervals(d)
    generic = profile.statistic(lambda g: np.linalg.svd(g @ d, compute_uv=False).sum(), exponent=None)
    # the same float64 means of the float32 block sums, SVD'd singly or batched: a few ulps of float64
    for field in ("value", "se"):
        np.testing.assert_allclose(getattr(generic, field), getattr(est, field), rtol=1e-9)
    assert np.all((est.lo <= est.estimate) & (est.estimate <= est.hi))
    # block means vs the float32 average files: the file rounds once (u), the block sums once each (4 u)
    np.testing.assert_allclose(est.value, sums, rtol=10 * U32 * 3)
    # relative memory: the library's number on every leave-one-out mean, and on the whole text
    direction = norm.direction(emb[1] - emb[2])
    rel = profile.relative_memory(direction, d, classes=["overall"])
    for d_i in range(3):
        g = profile.averages[0, d_i].astype(np.float64) @ d
        want = np.linalg.norm(g @ direction) / np.linalg.svd(g, compute_uv=False)[0]
        assert rel.value[0, d_i] == pytest.approx(want, rel=1e-4)   # float32 average vs float64 block means
        assert rel.lo[0, d_i] <= rel.estimate[0, d_i] <= rel.hi[0, d_i]
    cos = profile.subspace_cosine(direction, d, 1, classes=["nouns"])
    assert np.all((cos.value >= 0) & (cos.value <= 1 + 1e-12))
    comparison = profile.intervals(d).compare("nouns", "verbs", [1, 2])
    assert comparison.lo <= comparison.estimate <= comparison.hi
    ranks = profile.ranking(d, delays=[1])
    assert [c for c, _ in ranks[1]] == sorted(["nouns", "verbs"], key=lambda c: -sums[profile.classes.index(c), 1])


def test_intervals_save_as_the_cli_does(setup):
    root, path = setup
    profile = sg.MemoryProfile.compute(path, log=lambda line: None)
    d = sg.normalisation(sg.load_model(str(root / "model"))).d_factor
    profile.intervals(d).save(str(root / "api"))
    analysis.atomic_save_npy(str(root / "D.npy"), d)
    assert sg_intervals.main([str(root / "grads"), str(root / "D.npy"), "--out", str(root / "cli")]) == 0
    for name in (intervals.INTERVALS_CSV, intervals.REPLICATES_CSV):
        assert filecmp.cmp(root / "api" / name, root / "cli" / name, shallow=False), name
    loaded = sg.Intervals.load(str(root / "cli"))
    assert loaded.column("count", ["nouns"], [0])[0, 0] == profile.counts[1, 0]


def test_load_model_reads_each_kind_of_saved_model(setup):
    root, path = setup
    from_config = sg.load_model(path, log=lambda line: None)
    from_folder = sg.load_model(str(root / "model"))
    from_npz = sg.load_model(str(root / "model" / "weights.npz"))
    for model in (from_folder, from_npz):
        assert model.word_to_id == from_config.word_to_id
        np.testing.assert_array_equal(model.embedding, from_config.embedding)
    assert from_config.config.path == path and from_folder.config is None
    (root / "empty").mkdir()
    with pytest.raises(sg.UserError, match="not a saved model"):
        sg.load_model(str(root / "empty"))
    ids = sg.read_text(root / "data" / "valid.txt", from_folder)
    assert len(ids) == len(sg.read_corpus(path).valid)


def test_plots_return_figures(setup):
    from matplotlib.figure import Figure

    root, path = setup
    profile = sg.MemoryProfile.compute(path, log=lambda line: None)
    d = sg.normalisation(sg.load_model(str(root / "model"))).d_factor
    for fig in (sg.plot_sv_sums(profile, d, ["nouns", "verbs"]), sg.plot_sv_sums(profile, None, intervals=False)):
        assert isinstance(fig, Figure) and fig.axes[0].get_lines()
    with pytest.raises(sg.UserError, match="at least 3 delays"):     # delays 0-2: two points for a fit
        sg.plot_decay(profile, d)
    longer = sg.MemoryProfile.compute(path, log=lambda line: None, max_delay=5, grad_dir=str(root / "five"))
    fig = sg.plot_decay(longer, d)
    assert isinstance(fig, Figure) and len(fig.axes[0].get_lines()) == 3     # the sums and two fits

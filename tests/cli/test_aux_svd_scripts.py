"""Tests of aux_scripts/calculate_svs.py, relative_memory.py and cos_subspace_diff_vector.py (known answers)."""
import numpy as np
import pytest
from scipy.stats import ortho_group

from aux_scripts import calculate_svs, cos_subspace_diff_vector, normalize_equal_variance, relative_memory

H, E = 6, 4
DELAYS = (0, 1, 2, 9, 10, 11)


def svs_of(delay):
    return np.array([4.0, 2.0, 1.0, 0.5]) / np.array([1.0, delay + 1, delay + 1, delay + 1])


@pytest.fixture
def setup(tmp_path, capsys):
    """GRADROOT with delay_{k}_avg.npy, G_k D = U_k diag(svs_of(k)) Vᵀ (V shared); D and Z from real CLI."""
    rng = np.random.default_rng(11)
    emb = rng.standard_normal((500, E)) @ rng.standard_normal((E, E))
    np.save(tmp_path / "emb.npy", emb)
    assert normalize_equal_variance.main([str(tmp_path / "emb.npy"), "--no-sanity"]) == 0
    capsys.readouterr()
    d_path, z_path = tmp_path / "emb_D_norm_grad.npy", tmp_path / "emb_Z_norm_emb.npy"
    d_factor = np.load(d_path)
    root = tmp_path / "grads"
    root.mkdir()
    v_mat = ortho_group.rvs(E, random_state=1)
    for delay in DELAYS:
        u_mat = ortho_group.rvs(H, random_state=100 + delay)[:, :E]
        np.save(root / f"delay_{delay}_avg.npy", u_mat @ np.diag(svs_of(delay)) @ v_mat.T @ np.linalg.inv(d_factor))
    # a class average must never be read as the overall one
    np.save(root / "delay_3_avg_nouns.npy", 2 * np.load(root / "delay_1_avg.npy"))
    (root / "delay_3_count.txt").write_text("5\n")
    return root, d_path, z_path, d_factor, v_mat


def parse(out):
    """[(delay, {field: value})] from the tab-separated `name: value` lines."""
    rows = []
    for line in out.splitlines():
        fields = dict(field.split(": ") for field in line.split("\t"))
        rows.append((int(fields.pop("delay")), {key: float(val) for key, val in fields.items()}))
    return rows


def test_calculate_svs(setup, capsys):
    root, d_path, _, _, _ = setup
    assert calculate_svs.main([str(root), str(d_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split("\t")[0] == "delay: 0"
    names = [f.split(":")[0] for f in out.splitlines()[0].split("\t")]
    assert names == ["delay", "SV_1", "SV_2", "SV_3", "SV_4", "sum"]
    rows = parse(out)
    assert [delay for delay, _ in rows] == list(DELAYS)
    for delay, fields in rows:
        np.testing.assert_allclose([fields[f"SV_{i}"] for i in range(1, 5)], svs_of(delay), atol=1e-12)
        assert fields["sum"] == pytest.approx(svs_of(delay).sum(), abs=1e-12)
    assert calculate_svs.main([str(root), str(d_path), "nouns"]) == 0
    [(delay, fields)] = parse(capsys.readouterr().out)
    assert delay == 3 and fields["SV_1"] == pytest.approx(2 * svs_of(1)[0], abs=1e-12)


def test_five_svs_and_format_line():
    line = calculate_svs.format_line(4, np.array([5.0, 4, 3, 2, 1, 0.5]))
    assert line == "delay: 4\tSV_1: 5.0\tSV_2: 4.0\tSV_3: 3.0\tSV_4: 2.0\tSV_5: 1.0\tsum: 15.5"


def test_relative_memory(setup, tmp_path, capsys):
    root, d_path, z_path, d_factor, v_mat = setup
    np.save(tmp_path / "diff.npy", 5.0 * d_factor @ v_mat[:, 1])  # Z·diff ∝ v_2
    argv = [str(tmp_path / "diff.npy"), str(root), str(z_path), "--grad-norm", str(d_path)]
    assert relative_memory.main(argv) == 0
    rows = parse(capsys.readouterr().out)
    assert [delay for delay, _ in rows] == list(DELAYS)
    for delay, fields in rows:
        assert list(fields) == ["relative memory"]
        assert fields["relative memory"] == pytest.approx(svs_of(delay)[1] / svs_of(delay)[0], abs=1e-12)
    assert relative_memory.main(argv[:3]) == 2   # --grad-norm is required: a usage error
    assert "--grad-norm" in capsys.readouterr().err


def test_cos_subspace(setup, tmp_path, capsys):
    root, d_path, z_path, d_factor, v_mat = setup
    np.save(tmp_path / "diff.npy", d_factor @ (v_mat[:, 0] + v_mat[:, 2]))
    for thr, cosine in ((1, np.sqrt(0.5)), (2, np.sqrt(0.5)), (3, 1.0)):
        argv = [str(tmp_path / "diff.npy"), str(root), str(thr), str(z_path), str(d_path)]
        assert cos_subspace_diff_vector.main(argv) == 0
        rows = parse(capsys.readouterr().out)
        assert [delay for delay, _ in rows] == list(DELAYS)
        for delay, fields in rows:
            svs = svs_of(delay)
            assert fields["cosine distance"] == pytest.approx(cosine, abs=1e-12)
            assert fields["percentage total sum"] == pytest.approx(100 * svs[:thr].sum() / svs.sum(), abs=1e-10)
    assert cos_subspace_diff_vector.main([str(tmp_path / "diff.npy"), str(root), "5", str(z_path), str(d_path)]) == 2
    assert "THR 5 must be between 1 and 4" in capsys.readouterr().err
    assert cos_subspace_diff_vector.main([str(tmp_path / "diff.npy"), str(root), "0", str(z_path), str(d_path)]) == 2
    assert "THR must be >= 1" in capsys.readouterr().err


def test_shape_and_file_errors(setup, tmp_path, capsys):
    root, d_path, z_path, _, _ = setup
    np.save(tmp_path / "D3.npy", np.eye(3))
    np.save(tmp_path / "D23.npy", np.ones((2, 3)))
    np.save(tmp_path / "diff3.npy", np.ones(3))
    np.save(tmp_path / "diff4.npy", np.ones(4))
    np.save(tmp_path / "zero.npy", np.zeros(4))

    def error(module, argv):
        assert module.main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        return err

    assert "D3.npy is (3, 3): the embedding sizes differ" in error(calculate_svs, [root, tmp_path / "D3.npy"])
    assert "expected a square matrix" in error(calculate_svs, [root, tmp_path / "D23.npy"])
    assert "gradient directory" in error(calculate_svs, [tmp_path / "nope", d_path])
    assert "no delay_{k}_avg_verbs.npy files" in error(calculate_svs, [root, d_path, "verbs"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"no delay_{{k}}_avg.npy files in {empty}" in error(calculate_svs, [empty, d_path])
    err = error(relative_memory, [tmp_path / "diff3.npy", root, z_path, "--grad-norm", d_path])
    assert "emb_Z_norm_emb.npy has shape (4, 4), expected (3, 3)" in err
    err = error(relative_memory, [tmp_path / "diff4.npy", root, z_path, "--grad-norm", tmp_path / "D3.npy"])
    assert "D3.npy has shape (3, 3), expected (4, 4)" in err
    assert "is zero" in error(relative_memory, [tmp_path / "zero.npy", root, z_path, "--grad-norm", d_path])
    err = error(cos_subspace_diff_vector, [tmp_path / "diff4.npy", root, 1, z_path, tmp_path / "D3.npy"])
    assert "D3.npy has shape (3, 3), expected (4, 4)" in err
    np.save(root / "delay_12_avg.npy", np.ones((H, 3)))
    err = error(cos_subspace_diff_vector, [tmp_path / "diff4.npy", root, 1, z_path, d_path])
    assert "delay_12_avg.npy has shape (6, 3) but" in err

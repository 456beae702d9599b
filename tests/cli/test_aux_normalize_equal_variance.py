"""Tests of aux_scripts/normalize_equal_variance.py."""
import numpy as np

from aux_scripts import normalize_equal_variance

FACTOR = np.array([[1.0, 0, 0], [0.6, 0.5, 0], [-0.3, 0.2, 2.0]])


def test_outputs_and_sanity(tmp_path, capsys):
    rng = np.random.default_rng(7)
    emb = (rng.standard_normal((3000, 3)) @ FACTOR.T + 0.5).astype(np.float32)
    np.save(tmp_path / "emb.npy", emb)
    assert normalize_equal_variance.main([str(tmp_path / "emb.npy")]) == 0
    out = capsys.readouterr().out
    load = {name: np.load(tmp_path / f"emb_{name}.npy") for name in ("mean", "covar", "D_norm_grad", "Z_norm_emb")}
    x64 = emb.astype(np.float64)
    cov = (x64 - x64.mean(0)).T @ (x64 - x64.mean(0)) / (len(x64) - 1)
    np.testing.assert_allclose(load["mean"], x64.mean(0), atol=1e-12)
    np.testing.assert_allclose(load["covar"], cov, atol=1e-12)
    np.testing.assert_allclose(load["D_norm_grad"] @ load["D_norm_grad"].T, cov, atol=1e-12)
    np.testing.assert_allclose(load["Z_norm_emb"] @ cov @ load["Z_norm_emb"].T, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(load["Z_norm_emb"] @ load["D_norm_grad"], np.eye(3), atol=1e-12)
    lines = {line.split(":")[0]: float(line.rsplit(": ", 1)[1]) for line in out.splitlines() if "should" in line}
    assert lines["max |Z C Z^T - I| (should be very small)"] < 1e-10
    assert lines["max |covariance of Z x - I| (should be very small)"] < 1e-10
    sv_z = np.linalg.svd(load["Z_norm_emb"], compute_uv=False)
    assert lines["condition number of Z (should be < 100)"] == sv_z[0] / sv_z[-1]


def test_no_sanity_and_bad_condition_warning(tmp_path, capsys):
    rng = np.random.default_rng(8)
    emb = rng.standard_normal((100, 2)) * np.array([1.0, 1e-3])
    np.save(tmp_path / "e.npy", emb)
    assert normalize_equal_variance.main([str(tmp_path / "e.npy")]) == 0
    assert "Z is badly conditioned" in capsys.readouterr().err
    assert normalize_equal_variance.main([str(tmp_path / "e.npy"), "--no-sanity"]) == 0
    captured = capsys.readouterr()
    assert "should" not in captured.out and captured.err == ""


def test_errors(tmp_path, capsys):
    rng = np.random.default_rng(9)
    emb = rng.standard_normal((30, 3))
    emb[:, 1] = 2.0
    np.save(tmp_path / "c.npy", emb)
    assert normalize_equal_variance.main([str(tmp_path / "c.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("normalize_equal_variance.py: error: covariance of ")
    assert "dimension 1 has zero variance" in err and err.count("\n") == 1
    assert not (tmp_path / "c_D_norm_grad.npy").exists()
    np.save(tmp_path / "v.npy", np.ones(3))
    assert normalize_equal_variance.main([str(tmp_path / "v.npy")]) == 2
    assert "v.npy has shape (3,), expected a matrix" in capsys.readouterr().err
    assert normalize_equal_variance.main([str(tmp_path / "none.npy")]) == 2
    assert "does not exist" in capsys.readouterr().err

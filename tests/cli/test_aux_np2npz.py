"""Tests of aux_scripts/np2npz.py."""
import numpy as np

from aux_scripts import np2npz


def test_stacks_in_numeric_order(tmp_path, capsys):
    rng = np.random.default_rng(0)
    mats = rng.standard_normal((12, 3, 2)).astype(np.float32)
    for n, mat in enumerate(mats):
        np.save(tmp_path / f"{n}.npy", mat)
    (tmp_path / "mapping.txt").write_text("".join(f"{n}\tw\tw-\n" for n in range(12)))
    assert np2npz.main([str(tmp_path)]) == 0
    assert "12 matrices of shape (3, 2)" in capsys.readouterr().out
    with np.load(tmp_path / "all.npz", allow_pickle=False) as data:
        assert data.files == ["arr_0"]
        np.testing.assert_array_equal(data["arr_0"], mats)
    assert (tmp_path / "11.npy").exists()  # inputs are kept


def test_relative_path(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "0.npy", np.ones((2, 2), np.float32))
    monkeypatch.chdir(tmp_path)
    assert np2npz.main(["d"]) == 0
    with np.load(tmp_path / "d" / "all.npz") as data:
        assert data["arr_0"].shape == (1, 2, 2)


def test_errors(tmp_path, capsys):
    assert np2npz.main([str(tmp_path / "missing")]) == 2
    assert f"np2npz.py: error: directory {tmp_path / 'missing'} does not exist" in capsys.readouterr().err
    assert np2npz.main([str(tmp_path)]) == 2
    assert f"directory {tmp_path} has no {{n}}.npy files" in capsys.readouterr().err
    np.save(tmp_path / "0.npy", np.ones(3, np.float32))
    assert np2npz.main([str(tmp_path)]) == 2
    assert f"{tmp_path / '0.npy'} has shape (3,), expected a matrix" in capsys.readouterr().err
    assert not (tmp_path / "all.npz").exists()

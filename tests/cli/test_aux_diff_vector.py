"""Tests of aux_scripts/diff_vector.py."""
import numpy as np

from aux_scripts import diff_vector


def test_difference_and_errors(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.array([1.5, 2.0, -1.0], np.float32))
    np.save(tmp_path / "b.npy", np.array([0.5, 4.0, 1.0], np.float32))
    assert diff_vector.main([str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), str(tmp_path / "d.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), [1.0, -2.0, -2.0])
    assert diff_vector.main([str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), str(tmp_path / "a.npy")]) == 2
    assert "refusing to overwrite input file" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), [1.5, 2.0, -1.0])
    np.save(tmp_path / "c.npy", np.zeros(2))
    assert diff_vector.main([str(tmp_path / "a.npy"), str(tmp_path / "c.npy"), str(tmp_path / "o.npy")]) == 2
    assert "has shape (3,) but" in capsys.readouterr().err
    np.save(tmp_path / "m.npy", np.zeros((2, 2)))
    assert diff_vector.main([str(tmp_path / "m.npy"), str(tmp_path / "c.npy"), str(tmp_path / "o.npy")]) == 2
    assert "m.npy has shape (2, 2), expected a vector" in capsys.readouterr().err

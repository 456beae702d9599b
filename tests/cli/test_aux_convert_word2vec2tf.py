"""Tests of aux_scripts/convert_word2vec2tf.py."""
import numpy as np

from aux_scripts import convert_word2vec2tf


def test_conversion(tmp_path, capsys):
    (tmp_path / "w2v.txt").write_text("4 3\ncat 1 2 3\nthe 0.5 0.25 -1\nemu 9 9 9\ndog 1e-1 0 0\n")
    (tmp_path / "dict").write_text("the\t0\ndog\t1\ncat\t2\nyak\t3\n")
    out = tmp_path / "out"
    argv = [str(tmp_path / "w2v.txt"), str(tmp_path / "dict"), str(out), str(tmp_path / "new_dict")]
    assert convert_word2vec2tf.main(argv) == 0
    emb = np.load(out / "all.npy")
    assert emb.dtype == np.float32
    np.testing.assert_array_equal(emb, np.array([[1, 2, 3], [0.5, 0.25, -1], [0.1, 0, 0]], np.float32))
    assert (tmp_path / "new_dict").read_text() == "cat\t0\nthe\t1\ndog\t2\n"
    assert "1 of the 4 words" in capsys.readouterr().out


def test_errors(tmp_path, capsys):
    (tmp_path / "w2v.txt").write_text("cat 1 2 3\nthe 0.5 0.25\n")
    (tmp_path / "dict").write_text("the\t0\ncat\t1\n")
    argv = [str(tmp_path / "w2v.txt"), str(tmp_path / "dict"), str(tmp_path / "o"), str(tmp_path / "nd")]
    assert convert_word2vec2tf.main(argv) == 2
    assert f"{tmp_path / 'w2v.txt'} line 2: vector of 2 values, expected 3" in capsys.readouterr().err
    assert not (tmp_path / "nd").exists()
    argv[3] = str(tmp_path / "dict")
    assert convert_word2vec2tf.main(argv) == 2
    assert "refusing to overwrite input file" in capsys.readouterr().err
    argv[1], argv[3] = str(tmp_path / "missing"), str(tmp_path / "nd")
    assert convert_word2vec2tf.main(argv) == 2
    assert "dictionary file" in capsys.readouterr().err

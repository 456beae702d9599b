"""Tests of aux_scripts/avg_gradient_matrix.py and its alias avg_gradient_matrix_pos.py."""
import numpy as np
import pytest

from aux_scripts import avg_gradient_matrix, avg_gradient_matrix_pos, np2npz

WORDS = ["bank", "the", "run"]


@pytest.fixture
def dump(tmp_path):
    """GRADROOT with time steps 0..2, 10 windows each; returns (root, {(t, k): stack})."""
    rng = np.random.default_rng(5)
    root = tmp_path / "grads"
    stacks = {}
    for t in range(3):
        for k in range(t + 1):
            folder = root / f"timestep_{t}" / f"delay_{k}"
            folder.mkdir(parents=True)
            stacks[(t, k)] = rng.standard_normal((10, 3, 2)).astype(np.float32)
            for n, mat in enumerate(stacks[(t, k)]):
                np.save(folder / f"{n}.npy", mat)
            (folder / "mapping.txt").write_text(
                "".join(f"{n}\t{WORDS[n % 3]}\t{WORDS[n % 3]}-x-\n" for n in range(10)))
    (root / "grad_info.json").write_text("{}")
    (tmp_path / "nouns.txt").write_text("NN\nNNS\n")
    (tmp_path / "verbs").write_text("VB\n")
    (tmp_path / "pos.txt").write_text("bank ['NN', 'VB']\nthe ['DT']\nrun VB\n")
    return root, stacks


def test_overall_average_npy_then_npz(dump, capsys):
    root, stacks = dump
    assert avg_gradient_matrix.main([str(root), "1"]) == 0
    avg = np.load(root / "delay_1_avg.npy")
    expected = np.concatenate([stacks[(1, 1)], stacks[(2, 1)]]).astype(np.float64).mean(axis=0)
    assert avg.dtype == np.float32
    np.testing.assert_allclose(avg, expected, rtol=1e-6)
    assert (root / "delay_1_count.txt").read_text() == "20\n"
    assert "average of 20 matrices" in capsys.readouterr().out
    for t in (1, 2):
        assert np2npz.main([str(root / f"timestep_{t}" / "delay_1")]) == 0
    (root / "delay_1_avg.npy").unlink()
    assert avg_gradient_matrix.main([str(root), "1", "npz"]) == 0
    np.testing.assert_array_equal(np.load(root / "delay_1_avg.npy"), avg)


def test_class_averages(dump, tmp_path, capsys):
    root, stacks = dump
    pos = {"bank": {"NN", "VB"}, "the": {"DT"}, "run": {"VB"}}
    argv = [str(root), "0", f"{tmp_path / 'nouns.txt'},{tmp_path / 'verbs'}", str(tmp_path / "pos.txt")]
    assert avg_gradient_matrix.main(argv) == 0
    for name, tags in (("nouns", {"NN", "NNS"}), ("verbs", {"VB"})):
        rows = [stacks[(t, 0)][n] for t in range(3) for n in range(10) if pos[WORDS[n % 3]] & tags]
        np.testing.assert_allclose(np.load(root / f"delay_0_avg_{name}.npy"),
                                   np.mean(np.array(rows, np.float64), axis=0), rtol=1e-6)
        assert (root / f"delay_0_count_{name}.txt").read_text() == f"{len(rows)}\n"
    assert not (root / "delay_0_avg.npy").exists()
    capsys.readouterr()
    # the alias, reading all.npz, gives the same averages
    for t in range(3):
        np2npz.main([str(root / f"timestep_{t}" / "delay_0")])
    before = np.load(root / "delay_0_avg_verbs.npy")
    assert avg_gradient_matrix_pos.main([str(root), "0", str(tmp_path / "verbs"), str(tmp_path / "pos.txt"),
                                         "npz"]) == 0
    np.testing.assert_array_equal(np.load(root / "delay_0_avg_verbs.npy"), before)


def test_missing_words_warn(dump, tmp_path, capsys):
    root, _ = dump
    (tmp_path / "pos2.txt").write_text("bank NN\n")
    assert avg_gradient_matrix.main([str(root), "0", str(tmp_path / "nouns.txt"), str(tmp_path / "pos2.txt")]) == 0
    assert "warning: 2 words are not in" in capsys.readouterr().err


def test_errors(dump, tmp_path, capsys):
    root, _ = dump

    def error(argv, prog=avg_gradient_matrix):
        assert prog.main(argv) == 2
        return capsys.readouterr().err

    assert "error: gradient directory" in error([str(tmp_path / "nope"), "0"])
    assert "no timestep_*/delay_7 folder" in error([str(root), "7"])
    assert "delay k must be >= 0" in error([str(root), "-1"])
    assert "unexpected arguments 'zip'" in error([str(root), "0", "zip"])
    (tmp_path / "bad_pos.txt").write_text("bank NN\nthe\n")
    err = error([str(root), "0", str(tmp_path / "nouns.txt"), str(tmp_path / "bad_pos.txt")])
    assert f"{tmp_path / 'bad_pos.txt'} line 2: word 'the' has no tags" in err
    (tmp_path / "bad_class").write_text("NN NNS\n")
    err = error([str(root), "0", str(tmp_path / "bad_class"), str(tmp_path / "pos.txt")], avg_gradient_matrix_pos)
    assert err.startswith("avg_gradient_matrix_pos.py: error: ")
    assert f"{tmp_path / 'bad_class'} line 1" in err
    (tmp_path / "adj").write_text("JJ\n")
    assert "class adj" in error([str(root), "0", str(tmp_path / "adj"), str(tmp_path / "pos.txt")])
    folder = root / "timestep_2" / "delay_2"
    for f in folder.glob("*.npy"):
        f.unlink()
    assert f"{folder} has no {{n}}.npy files and no all.npz" in error([str(root), "2"])
    np.save(root / "timestep_1" / "delay_1" / "4.npy", np.zeros((2, 3), np.float32))
    assert "4.npy holds matrices of shape (2, 3), expected (3, 2)" in error([str(root), "1"])

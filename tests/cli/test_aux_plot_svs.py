"""Tests of aux_scripts/plot_svs.py."""
import csv

import numpy as np
import pytest

from aux_scripts import plot_svs as sg_plot_svs
from state_gradients.measures import plot_svs


def make_root(path, scale, delays=(0, 1, 2, 10), classes=("nouns",)):
    """delay_{k}_avg[_{cls}].npy = diag(scale * [3, 2, 1] / (k + 1)) padded to 4 x 3: known singular values."""
    path.mkdir()
    for delay in delays:
        for cls in (None,) + tuple(classes):
            factor = scale * (2 if cls else 1) / (delay + 1)
            grad = np.zeros((4, 3))
            grad[:3, :3] = np.diag(factor * np.array([3.0, 2.0, 1.0]))
            suffix = f"_{cls}" if cls else ""
            np.save(path / f"delay_{delay}_avg{suffix}.npy", grad)
    return path


def test_csv_and_png(tmp_path, capsys):
    one, two = make_root(tmp_path / "m1", 1.0), make_root(tmp_path / "m2", 0.5)
    np.save(tmp_path / "D.npy", 2 * np.eye(3))
    out = tmp_path / "fig.png"
    argv = [str(one), str(two), "--classes", "overall,nouns", "--grad-norm", str(tmp_path / "D.npy"),
            "--top-k", "2", "--out", str(out)]
    assert sg_plot_svs.main(argv) == 0
    assert capsys.readouterr().out == f"wrote {out} and {tmp_path / 'fig.csv'}\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "fig.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["model", "class", "delay", "sum", "sv1", "sv2", "sv3", "sv4", "sv5"]
    assert len(rows) == 2 * 2 * 4
    assert [r["delay"] for r in rows[:4]] == ["0", "1", "2", "10"]
    for row in rows:
        factor = 2 * (1.0 if row["model"] == "m1" else 0.5) * (2 if row["class"] == "nouns" else 1) \
            / (int(row["delay"]) + 1)
        assert float(row["sum"]) == pytest.approx(6 * factor, rel=1e-12)
        np.testing.assert_allclose([float(row[f"sv{i}"]) for i in (1, 2, 3)], factor * np.array([3, 2, 1]),
                                   rtol=1e-12)
        assert row["sv4"] == row["sv5"] == ""


def test_relative_curves_and_labels(tmp_path):
    root = make_root(tmp_path / "m", 1.0, classes=())
    rows = plot_svs.collect([str(root)], ["mine"], ["overall"], [None])
    data = plot_svs.curves(rows, top_k=2, relative=True)
    delays, sums, top = data[("mine", "overall")]
    np.testing.assert_array_equal(delays, [0, 1, 2, 10])
    np.testing.assert_allclose(sums, [1, 1 / 2, 1 / 3, 1 / 11], rtol=1e-12)
    np.testing.assert_allclose(top, np.outer([1, 1 / 2, 1 / 3, 1 / 11], [1, 1]), rtol=1e-12)
    fig = plot_svs.draw(data, ["overall"], normalised=False, top_k=2, relative=True)
    assert fig.axes[0].get_ylabel() == "sum of singular values of G (not normalised) / value at delay 0"
    assert fig.axes[1].get_ylabel() == "top 2 singular values of G (not normalised) / value at delay 0"
    assert fig.axes[0].get_xlabel() == "delay"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["mine"]


def test_errors(tmp_path, capsys):
    root = make_root(tmp_path / "m", 1.0, delays=(1, 2), classes=())
    out = str(tmp_path / "f.png")

    def error(argv):
        assert sg_plot_svs.main(argv) == 2
        return capsys.readouterr().err

    assert "--relative needs delay 0" in error([str(root), "--relative", "--out", out])
    assert "--labels has 2 labels for 1" in error([str(root), "--labels", "a,b", "--out", out])
    np.save(tmp_path / "D.npy", np.eye(3))
    argv = [str(root), str(root)] + ["--grad-norm", str(tmp_path / "D.npy")] * 3 + ["--out", out]
    assert "--grad-norm has 3 files for 2" in error(argv)
    assert "no delay_{k}_avg_nouns.npy files" in error([str(root), "--classes", "nouns", "--out", out])
    assert "model m has only 3 singular values" in error([str(root), "--top-k", "4", "--out", out])
    assert "must end in .png" in error([str(root), "--out", str(tmp_path / "f.pdf")])
    np.save(tmp_path / "D2.npy", np.eye(2))
    assert "the embedding sizes differ" in error([str(root), "--grad-norm", str(tmp_path / "D2.npy"), "--out", out])
    with open(tmp_path / "norm.csv", "wb") as handle:  # a D file whose name collides with the CSV output
        np.save(handle, np.eye(3))
    err = error([str(root), "--grad-norm", str(tmp_path / "norm.csv"), "--out", str(tmp_path / "norm.png")])
    assert f"refusing to overwrite input file {tmp_path / 'norm.csv'}" in err
    assert (tmp_path / "norm.csv").stat().st_size > 0
    assert not (tmp_path / "f.png").exists()


def test_classes_all_lists_every_class_of_the_first_folder(tmp_path):
    root = make_root(tmp_path / "m", 1.0, classes=("verbs", "nouns"))
    out = tmp_path / "fig.png"
    assert sg_plot_svs.main([str(root), "--classes", "all", "--out", str(out)]) == 0
    with open(tmp_path / "fig.csv", newline="") as handle:
        classes = list(dict.fromkeys(r["class"] for r in csv.DictReader(handle)))
    assert classes == ["overall", "nouns", "verbs"]
    assert sg_plot_svs.main([str(tmp_path / "none"), "--classes", "all", "--out", str(out)]) == 2


def test_redraw_reads_back_the_csv_it_is_given(tmp_path):
    # a committed result's figure can be drawn again from its CSV alone (docs/results/redraw_figures.py)
    from state_gradients.measures import plot_svs as library

    csv_path = tmp_path / "svs.csv"
    csv_path.write_text("model,class,delay,sum,sv1,sv2,sv3,sv4,sv5\n"
                        "m,overall,0,2.5,1,,,,\nm,overall,1,0.25,0.2,,,,\nm,nouns,0,3.0,2,,,,\nm,nouns,1,0.5,0.4,,,,\n")
    curves = library.read_csv(str(csv_path), classes=["nouns"])
    assert list(curves) == [("m", "nouns")]
    delays, sums, top = curves["m", "nouns"]
    assert delays.tolist() == [0, 1] and sums.tolist() == [3.0, 0.5] and top is None
    library.redraw(str(csv_path), str(tmp_path / "svs.png"))
    assert (tmp_path / "svs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

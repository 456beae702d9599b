"""End to end: train a tiny LM, dump all time steps, and run every analysis script on the result.

Each script's printed numbers and written arrays are checked against an independent numpy
computation of the formulas in docs/spec.md §7.
"""
import glob
import os
import re
import shutil

import numpy as np
import pytest

from aux_scripts import avg_gradient_matrix, calculate_svs, cos_subspace_diff_vector, diff_vector, normalize_equal_variance, np2npz, pos_classifier_sklearn, relative_memory
from aux_scripts import plot_svs as sg_plot_svs
from tf_scripts import main as sg_main

LEXICON = {"NN": [f"noun{i}" for i in range(10)], "VBD": [f"verb{i}" for i in range(10)],
           "JJ": [f"adj{i}" for i in range(10)], "DT": ["the", "a", "this", "that", "every"]}


def _sentence(rng):
    pick = lambda tag: LEXICON[tag][rng.integers(len(LEXICON[tag]))]  # noqa: E731
    words = [pick("DT")] + [pick("JJ") for _ in range(rng.integers(0, 3))] + [pick("NN"), pick("VBD")]
    return " ".join(words + [pick("DT"), pick("NN")])


def _config(path, **keys):
    path.write_text("".join(f"{k} {v}\n" for k, v in keys.items()))
    return str(path)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    rng = np.random.default_rng(0)
    data = tmp / "data"
    data.mkdir()
    for name, n in [("train", 300), ("valid", 40), ("test", 10)]:
        (data / f"{name}.txt").write_text("\n".join(_sentence(rng) for _ in range(n)) + "\n")
    mapping = tmp / "pos_mapping.txt"
    mapping.write_text("".join(f"{w} ['{tag}']\n" for tag, words in LEXICON.items() for w in words))
    (tmp / "nouns.txt").write_text("NN\n")
    base = dict(save_path=tmp / "model", log_dir=tmp / "logs", data_path=data, vocab="False", basic_cell="LSTM",
                num_layers=1, embedding_size=6, size=8, num_steps=6, batch_size=2, init_scale=0.3,
                forget_bias=0, softmax="full", dropout=1, learning_rate=1, max_grad_norm=5, optimizer="sgd",
                max_max_epoch=2, trainer="trainer")
    assert sg_main.main(["--config", _config(tmp / "train.config", **base)]) == 0
    grads = dict(base, grad_interm="cell", time_step="all", max_delay=3)
    assert sg_main.main(["--notrain", "--notest", "--config",
                         _config(tmp / "dump.config", **grads, grad_dir=tmp / "dump")]) == 0
    assert sg_main.main(["--notrain", "--notest", "--config", _config(
        tmp / "avg.config", **grads, grad_dir=tmp / "stream", grad_dump="False", grad_average="True",
        pos_mapping=mapping, pos_classes=tmp / "nouns.txt")]) == 0
    assert sg_main.main(["--notrain", "--novalid", "--notest", "--config",
                         _config(tmp / "emb.config", **base, save_embedding=tmp / "emb.npy")]) == 0
    return tmp


def _matrices(folder):
    return np.stack([np.load(os.path.join(folder, f"{n}.npy"))
                     for n in sorted(int(f[:-4]) for f in os.listdir(folder) if f.endswith(".npy"))])


def _numbers(text, label):
    return {int(k): float(v) for k, v in re.findall(rf"delay: (\d+)\t[^\n]*?{label}: ([-0-9.eE+]+)", text)}


U32 = 2.0 ** -24   # float32 unit roundoff
B, T = 2, 6        # the pipeline's batch_size and num_steps


def test_averages_npy_npz_and_streaming_agree(pipeline, capsys):
    dump, stream = pipeline / "dump", pipeline / "stream"
    for k in range(3):
        expected = np.concatenate([_matrices(d) for d in sorted(glob.glob(str(dump / "timestep_*" / f"delay_{k}")))])
        scale = np.abs(expected).max()
        assert avg_gradient_matrix.main([str(dump), str(k)]) == 0
        from_npy = np.load(dump / f"delay_{k}_avg.npy")
        # a float64 mean of the same float32 matrices, stored in float32: one rounding (half an ulp of the largest)
        np.testing.assert_allclose(from_npy, expected.astype(np.float64).mean(axis=0), rtol=0, atol=U32 * scale)
        # the streaming sums add each window's <= B*T matrices in float32 before the float64 total: that
        # order's rounding, (B*T - 1) u of the largest, plus both files' float32 rounding
        stream_tol = (B * T + 1) * U32 * scale
        np.testing.assert_allclose(np.load(stream / f"delay_{k}_avg.npy"), from_npy, rtol=0, atol=stream_tol)
        assert int((stream / f"delay_{k}_count.txt").read_text()) == len(expected)
        for folder in glob.glob(str(dump / "timestep_*" / f"delay_{k}")):
            assert np2npz.main([folder]) == 0
            with np.load(os.path.join(folder, "all.npz")) as f:
                np.testing.assert_array_equal(f["arr_0"], _matrices(folder))
        os.rename(dump / f"delay_{k}_avg.npy", dump / f"npy_{k}.keep")
        assert avg_gradient_matrix.main([str(dump), str(k), "npz"]) == 0
        np.testing.assert_allclose(np.load(dump / f"delay_{k}_avg.npy"), from_npy, rtol=0, atol=2 * U32 * scale)
        # per class: the streaming nouns average equals the offline one from the dump
        assert avg_gradient_matrix.main([str(dump), str(k), str(pipeline / "nouns.txt"),
                                         str(pipeline / "pos_mapping.txt")]) == 0
        np.testing.assert_allclose(np.load(stream / f"delay_{k}_avg_nouns.npy"),
                                   np.load(dump / f"delay_{k}_avg_nouns.npy"), rtol=0, atol=stream_tol)


def test_normalisation_svs_classifier_memory_and_plot(pipeline, capsys, tmp_path):
    stream = str(pipeline / "stream")
    emb_path = str(pipeline / "emb.npy")
    emb = np.load(emb_path).astype(np.float64)
    assert normalize_equal_variance.main([emb_path]) == 0
    stem = emb_path[:-4]
    cov = np.cov(emb, rowvar=False)
    d = np.load(stem + "_D_norm_grad.npy")
    z = np.load(stem + "_Z_norm_emb.npy")
    np.testing.assert_allclose(np.load(stem + "_mean.npy"), emb.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(np.load(stem + "_covar.npy"), cov, atol=1e-6)
    np.testing.assert_allclose(d, np.linalg.cholesky(cov), atol=1e-6)
    np.testing.assert_allclose(z, np.linalg.inv(np.linalg.cholesky(cov)), atol=1e-5)
    capsys.readouterr()

    def svs(k, cls=None):
        g = np.load(os.path.join(stream, f"delay_{k}_avg{'' if cls is None else '_' + cls}.npy")).astype(np.float64)
        return np.linalg.svd(g @ d, compute_uv=False)

    for cls in (None, "nouns"):
        assert calculate_svs.main([stream, stem + "_D_norm_grad.npy"] + ([cls] if cls else [])) == 0
        sums = _numbers(capsys.readouterr().out, "sum")
        assert sorted(sums) == [0, 1, 2]
        for k, value in sums.items():
            assert value == pytest.approx(svs(k, cls).sum(), rel=1e-5)

    # classifier: mean embedding per tag, then the NN - VBD difference vector
    name = str(tmp_path / "clf")
    assert pos_classifier_sklearn.main([emb_path, str(pipeline / "model" / "dict"), str(pipeline / "pos_mapping.txt"),
                                        name, "--grid", "small", "--avg_emb"]) == 0
    word_to_id = dict(line.split("\t") for line in (pipeline / "model" / "dict").read_text().splitlines())
    for tag in ("NN", "VBD"):
        rows = [int(word_to_id[w]) for w in LEXICON[tag]]
        # the script's float32 mean of 10 rows: at most 10 roundings of the largest entry
        np.testing.assert_allclose(np.load(f"{name}_avg_{tag}.npy"), emb[rows].mean(axis=0), rtol=0,
                                   atol=10 * U32 * np.abs(emb[rows]).max())
    diff = str(tmp_path / "diff.npy")
    assert diff_vector.main([f"{name}_avg_NN.npy", f"{name}_avg_VBD.npy", diff]) == 0
    capsys.readouterr()
    dv = z @ np.load(diff).astype(np.float64)
    dhat = dv / np.linalg.norm(dv)

    assert relative_memory.main([diff, stream, stem + "_Z_norm_emb.npy", "--grad-norm", stem + "_D_norm_grad.npy"]) == 0
    rel = _numbers(capsys.readouterr().out, "relative memory")
    assert cos_subspace_diff_vector.main([diff, stream, "2", stem + "_Z_norm_emb.npy", stem + "_D_norm_grad.npy"]) == 0
    out = capsys.readouterr().out
    cos = _numbers(out, "cosine distance")
    pct = _numbers(out, "percentage total sum")
    for k in range(3):
        gd = np.load(os.path.join(stream, f"delay_{k}_avg.npy")).astype(np.float64) @ d
        u, s, vt = np.linalg.svd(gd)
        assert rel[k] == pytest.approx(np.linalg.norm(gd @ dhat) / s[0], rel=1e-5)
        assert cos[k] == pytest.approx(np.linalg.norm(vt[:2] @ dhat), rel=1e-5)
        assert pct[k] == pytest.approx(100 * s[:2].sum() / s.sum(), rel=1e-5)

    fig = str(tmp_path / "svs.png")
    assert sg_plot_svs.main([stream, "--grad-norm", stem + "_D_norm_grad.npy", "--classes", "overall,nouns",
                          "--out", fig]) == 0
    assert open(fig, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    rows = [line.split(",") for line in open(fig[:-4] + ".csv").read().splitlines()[1:]]
    for row in rows:
        cls = None if row[1] == "overall" else row[1]
        assert float(row[3]) == pytest.approx(svs(int(row[2]), cls).sum(), rel=1e-5)
    shutil.rmtree(tmp_path)

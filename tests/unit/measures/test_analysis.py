"""Tests of state_gradients/measures/analysis.py: readers, averaging, normalisation and singular-value measures."""
import os

import numpy as np
import pytest
from scipy.stats import ortho_group

from state_gradients.core.errors import UserError
from state_gradients.measures import analysis


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- POS files

def test_read_pos_mapping_all_formats(tmp_path):
    path = write(tmp_path / "map.txt", "bank ['NN', 'VB']\nthe ['DT']\n\nfoo not in list\nrun NN|VB\n"
                                       "go VB VBP\nx ['NN|VB', 'JJ']\ncomma [',', \"''\"]\nnone []\n")
    assert analysis.read_pos_mapping(path) == {
        "bank": {"NN", "VB"}, "the": {"DT"}, "foo": set(), "run": {"NN", "VB"}, "go": {"VB", "VBP"},
        "x": {"NN", "VB", "JJ"}, "comma": {",", "''"}, "none": set()}


@pytest.mark.parametrize("line", ["bank", "bank ['NN', 'VB'", "bank ['NN', 3]", "bank NN||VB", "bank [NN]"])
def test_read_pos_mapping_malformed_line_names_file_and_line(tmp_path, line):
    path = write(tmp_path / "map.txt", f"the DT\n{line}\n")
    with pytest.raises(UserError, match=rf"{tmp_path / 'map.txt'} line 2"):
        analysis.read_pos_mapping(path)


def test_read_pos_mapping_repeated_word_and_empty_and_missing(tmp_path):
    with pytest.raises(UserError, match="line 3: word 'the' already listed on line 1"):
        analysis.read_pos_mapping(write(tmp_path / "a", "the DT\nbank NN\nthe DT\n"))
    with pytest.raises(UserError, match="is empty"):
        analysis.read_pos_mapping(write(tmp_path / "b", "\n\n"))
    with pytest.raises(UserError, match="does not exist"):
        analysis.read_pos_mapping(tmp_path / "nope")


def test_write_pos_mapping_round_trip(tmp_path):
    mapping = {"bank": {"VB", "NN"}, "foo": set(), "comma": {",", "''"}, "<unk>": {"NN"}}
    out = tmp_path / "out.txt"
    analysis.write_pos_mapping(mapping, out)
    assert out.read_text().splitlines()[:2] == ["bank ['NN', 'VB']", "foo not in list"]
    assert analysis.read_pos_mapping(out) == mapping
    with pytest.raises(UserError, match="white space"):
        analysis.write_pos_mapping({"a b": {"NN"}}, out)
    with pytest.raises(UserError, match="malformed tag"):
        analysis.write_pos_mapping({"ab": {"NN VB"}}, out)


def test_read_pos_class(tmp_path):
    assert analysis.read_pos_class(write(tmp_path / "nouns", "NN\n\nNNS\nNNP \n")) == {"NN", "NNS", "NNP"}
    with pytest.raises(UserError, match=r"nouns2 line 2: 'NNS NNP' is not a single POS tag"):
        analysis.read_pos_class(write(tmp_path / "nouns2", "NN\nNNS NNP\n"))
    with pytest.raises(UserError, match="holds no tags"):
        analysis.read_pos_class(write(tmp_path / "empty", "\n"))


def test_class_name():
    assert analysis.class_name("classes/nouns.txt") == "nouns"
    assert analysis.class_name("/a/b/verbs") == "verbs"
    assert analysis.class_name("proper_nouns.v2") == "proper_nouns"
    with pytest.raises(UserError, match="cannot name output files"):
        analysis.class_name("a/.txt")


# ---------------------------------------------------------------------------- gradient dumps

WORDS = ["bank", "the", "run", "zebra"]
POS = {"bank": {"NN", "VB"}, "the": {"DT"}, "run": {"VB"}}  # zebra: missing from the mapping


def make_dump(root, steps=(0, 1, 2), windows=12, shape=(4, 3), seed=0):
    """Random dump GRADROOT/timestep_t/delay_k/{n}.npy + mapping.txt; returns {(t, k): stack [N, H, E]}."""
    rng = np.random.default_rng(seed)
    stacks = {}
    for t in steps:
        for k in range(t + 1):
            folder = root / f"timestep_{t}" / f"delay_{k}"
            folder.mkdir(parents=True)
            stack = rng.standard_normal((windows,) + shape).astype(np.float32)
            for n, mat in enumerate(stack):
                np.save(folder / f"{n}.npy", mat)
            lines = [f"{n}\t{WORDS[(n + t + k) % len(WORDS)]}\tw-x-\n" for n in range(windows)]
            write(folder / "mapping.txt", "".join(lines))
            stacks[(t, k)] = stack
    return stacks


def to_npz_only(root):
    """Replace every delay folder's {n}.npy files by all.npz (written by np.savez_compressed)."""
    for folder in root.glob("timestep_*/delay_*"):
        files = sorted(folder.glob("*.npy"), key=lambda p: int(p.stem))
        np.savez_compressed(folder / "all.npz", np.stack([np.load(f) for f in files]))
        for f in files:
            f.unlink()


def test_list_numbered_npy_numeric_order_and_stray_file(tmp_path):
    for n in (10, 9, 0, 2):
        np.save(tmp_path / f"{n}.npy", np.zeros((1, 1)))
    write(tmp_path / "mapping.txt", "")
    assert [n for n, _ in analysis.list_numbered_npy(tmp_path)] == [0, 2, 9, 10]
    np.save(tmp_path / "extra.npy", np.zeros(1))
    with pytest.raises(UserError, match="extra.npy: unexpected .npy file"):
        analysis.list_numbered_npy(tmp_path)


def test_stack_to_npz_round_trip_and_chunked_reading(tmp_path):
    rng = np.random.default_rng(1)
    mats = rng.standard_normal((11, 3, 2)).astype(np.float32)
    for n, mat in enumerate(mats):
        np.save(tmp_path / f"{n}.npy", mat)
    assert analysis.stack_to_npz(tmp_path) == (11, (3, 2))
    with np.load(tmp_path / "all.npz", allow_pickle=False) as data:
        assert data.files == ["arr_0"]
        np.testing.assert_array_equal(data["arr_0"], mats)  # 10.npy after 9.npy
    chunks = list(analysis.iter_delay_matrices(tmp_path, use_npz=True, chunk=4))
    assert [len(c) for _, c in chunks] == [4, 4, 3]
    np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), mats)
    np.testing.assert_array_equal(np.concatenate([n for n, _ in chunks]), np.arange(11))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_stack_to_npz_refuses_mixed_shapes(tmp_path):
    np.save(tmp_path / "0.npy", np.zeros((3, 2), np.float32))
    np.save(tmp_path / "1.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(UserError, match=r"1.npy holds matrices of shape \(2, 3\), expected \(3, 2\)"):
        analysis.stack_to_npz(tmp_path)
    assert not (tmp_path / "all.npz").exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_delay_dirs(tmp_path):
    for t in (10, 2, 9):
        (tmp_path / f"timestep_{t}" / "delay_0").mkdir(parents=True)
    (tmp_path / "timestep_10" / "delay_3").mkdir()
    assert analysis.delay_dirs(tmp_path, 0) == [str(tmp_path / f"timestep_{t}" / "delay_0") for t in (2, 9, 10)]
    assert analysis.delay_dirs(tmp_path, 3) == [str(tmp_path / "timestep_10" / "delay_3")]
    with pytest.raises(UserError, match="no timestep_\\*/delay_4 folder"):
        analysis.delay_dirs(tmp_path, 4)
    single = tmp_path / "single"
    (single / "delay_1").mkdir(parents=True)
    assert analysis.delay_dirs(single, 1) == [str(single / "delay_1")]
    with pytest.raises(UserError, match="does not exist"):
        analysis.delay_dirs(tmp_path / "nope", 0)


def test_average_overall_npy_and_npz_agree_with_numpy(tmp_path):
    stacks = make_dump(tmp_path)
    expected = np.concatenate([stacks[(t, 1)] for t in (1, 2)]).astype(np.float64).mean(axis=0)
    avg, counts, _ = analysis.average_gradients(tmp_path, 1)
    assert counts == {None: 24} and avg[None].dtype == np.float32
    np.testing.assert_allclose(avg[None], expected, rtol=1e-6)
    to_npz_only(tmp_path)
    avg_npz, counts_npz, _ = analysis.average_gradients(tmp_path, 1)
    assert counts_npz == counts
    np.testing.assert_array_equal(avg_npz[None], avg[None])


def test_average_per_class_by_hand(tmp_path):
    stacks = make_dump(tmp_path, steps=(0, 1), windows=9)
    classes = {"nouns": {"NN", "NNS"}, "verbs": {"VB"}}
    avg, counts, missing = analysis.average_gradients(tmp_path, 0, classes=classes, pos_mapping=POS)
    for name, tags in classes.items():
        rows = [stacks[(t, 0)][n] for t in (0, 1) for n in range(9)
                if POS.get(WORDS[(n + t) % 4], set()) & tags]
        assert counts[name] == len(rows)
        np.testing.assert_allclose(avg[name], np.mean(np.array(rows, np.float64), axis=0), rtol=1e-6)
    assert missing == {"zebra"}
    to_npz_only(tmp_path)
    avg_npz, counts_npz, _ = analysis.average_gradients(tmp_path, 0, classes=classes, pos_mapping=POS)
    assert counts_npz == counts
    for name in classes:
        np.testing.assert_array_equal(avg_npz[name], avg[name])


def test_average_npy_matched_by_window_number_not_line(tmp_path):
    folder = tmp_path / "timestep_0" / "delay_0"
    folder.mkdir(parents=True)
    np.save(folder / "0.npy", np.ones((1, 1), np.float32))
    np.save(folder / "1.npy", 3 * np.ones((1, 1), np.float32))
    write(folder / "mapping.txt", "1\tbank\tbank-\n0\tthe\tthe-\n")
    avg, counts, _ = analysis.average_gradients(tmp_path, 0, classes={"n": {"NN"}}, pos_mapping=POS)
    assert counts == {"n": 1} and avg["n"][0, 0] == 3


def test_average_errors(tmp_path):
    make_dump(tmp_path, steps=(0, 1), windows=3)
    with pytest.raises(UserError, match="no window at delay 0 .* class adj"):
        analysis.average_gradients(tmp_path, 0, classes={"adj": {"JJ"}}, pos_mapping=POS)
    empty = tmp_path / "timestep_1" / "delay_1"
    for f in empty.glob("*.npy"):
        f.unlink()
    with pytest.raises(UserError, match=rf"{empty} has no \{{n\}}.npy files and no all.npz"):
        analysis.average_gradients(tmp_path, 1)
    with pytest.raises(UserError, match=r"has no all.npz"):
        analysis.average_gradients(tmp_path, 0, use_npz=True)
    bad = tmp_path / "timestep_1" / "delay_0"
    np.save(bad / "1.npy", np.zeros((3, 4), np.float32))
    with pytest.raises(UserError, match=r"1.npy holds matrices of shape \(3, 4\), expected \(4, 3\)"):
        analysis.average_gradients(tmp_path, 0)
    np.save(bad / "1.npy", np.zeros((4, 3), np.float32))
    write(bad / "mapping.txt", "0\tbank\tbank-\n1 the the-\n")
    with pytest.raises(UserError, match=rf"{bad / 'mapping.txt'} line 2: expected `n<TAB>word<TAB>sequence`"):
        analysis.average_gradients(tmp_path, 0, classes={"n": {"NN"}}, pos_mapping=POS)
    write(bad / "mapping.txt", "0\tbank\tbank-\n1\tthe\tthe-\n")
    with pytest.raises(UserError, match=r"no line for window 2 \(.*2.npy\)"):
        analysis.average_gradients(tmp_path, 0, classes={"n": {"NN"}}, pos_mapping=POS)


def test_average_npz_mapping_count_mismatch(tmp_path):
    make_dump(tmp_path, steps=(0,), windows=3)
    to_npz_only(tmp_path)
    mapping = tmp_path / "timestep_0" / "delay_0" / "mapping.txt"
    write(mapping, "0\tbank\tbank-\n1\tthe\tthe-\n2\trun\trun-\n3\trun\trun-\n")
    with pytest.raises(UserError, match="has 4 lines but .*all.npz holds 3 matrices"):
        analysis.average_gradients(tmp_path, 0, classes={"n": {"NN"}}, pos_mapping=POS)


def test_list_averages_separates_classes_and_orders_numerically(tmp_path):
    for name in ("delay_10_avg.npy", "delay_9_avg.npy", "delay_3_avg_nouns.npy", "delay_3_avg.npy",
                 "delay_1_avg_nouns.npy", "delay_3_count.txt", "grad_info.json"):
        np.save(tmp_path / name, np.zeros((2, 2)))
    assert [k for k, _ in analysis.list_averages(tmp_path)] == [3, 9, 10]
    assert analysis.list_averages(tmp_path, "nouns") == [(1, str(tmp_path / "delay_1_avg_nouns.npy")),
                                                        (3, str(tmp_path / "delay_3_avg_nouns.npy"))]
    with pytest.raises(UserError, match="no delay_{k}_avg_verbs.npy files .* classes present: nouns"):
        analysis.list_averages(tmp_path, "verbs")


def test_load_averages_checks_embedding_size(tmp_path):
    np.save(tmp_path / "delay_0_avg.npy", np.zeros((4, 3)))
    with pytest.raises(UserError, match=r"delay_0_avg.npy has shape \(4, 3\) but D.npy is \(2, 2\)"):
        analysis.load_averages(tmp_path, None, np.eye(2), "D.npy")
    np.save(tmp_path / "delay_1_avg.npy", np.zeros(3))
    with pytest.raises(UserError, match=r"delay_1_avg.npy has shape \(3,\), expected a matrix"):
        analysis.load_averages(tmp_path)


# ---------------------------------------------------------------------------- normalisation

def test_normalisation_known_covariance():
    rng = np.random.default_rng(2)
    factor = np.array([[2.0, 0, 0], [0.5, 1.0, 0], [-1.0, 0.3, 0.2]])
    emb = rng.standard_normal((4000, 3)) @ factor.T + np.array([1.0, -2.0, 0.5])
    mean, cov, d_factor, z_inv = analysis.normalisation(emb, "emb")
    centred = emb - emb.mean(axis=0)
    sample_cov = centred.T @ centred / (len(emb) - 1)
    np.testing.assert_allclose(mean, emb.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(cov, sample_cov, atol=1e-12)
    np.testing.assert_allclose(d_factor @ d_factor.T, sample_cov, atol=1e-12)
    np.testing.assert_allclose(z_inv @ sample_cov @ z_inv.T, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(d_factor, np.tril(d_factor))
    assert np.all(np.diag(d_factor) > 0)
    np.testing.assert_allclose(d_factor, factor, atol=0.1)  # the population factor, up to sampling
    checks = analysis.sanity_checks(emb, mean, cov, d_factor, z_inv)
    assert checks["identity_error"] < 1e-10 and checks["normalised_cov_error"] < 1e-10
    assert checks["centred_mean"] < 1e-12 and checks["factor_error"] < 1e-12
    sv_z = np.linalg.svd(np.linalg.inv(factor), compute_uv=False)
    assert checks["condition_z"] == pytest.approx(sv_z[0] / sv_z[-1], rel=0.1)


def test_normalisation_singular_covariance():
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((50, 4))
    constant = emb.copy()
    constant[:, 2] = 7.0
    with pytest.raises(UserError, match="dimension 2 has zero variance"):
        analysis.normalisation(constant, "E.npy")
    combo = emb.copy()
    combo[:, 3] = combo[:, 0] - 2 * combo[:, 1]
    with pytest.raises(UserError, match=r"E.npy is singular: dimension 3 is a linear combination of dimensions 0..2"):
        analysis.normalisation(combo, "E.npy")
    with pytest.raises(UserError, match="4 rows for 4 dimensions"):
        analysis.normalisation(emb[:4], "E.npy")


# ---------------------------------------------------------------------------- singular-value measures

def known_gradient(svs, d_factor, seed=0):
    """(G, U, V) with G·D = U diag(svs) Vᵀ exactly: G = U S Vᵀ D⁻¹, U [H, r], V [E, r]."""
    size_h, size_e = 6, d_factor.shape[0]
    u_mat = ortho_group.rvs(size_h, random_state=seed)[:, :len(svs)]
    v_mat = ortho_group.rvs(size_e, random_state=seed + 1)[:, :len(svs)]
    grad = u_mat @ np.diag(svs) @ v_mat.T @ np.linalg.inv(d_factor)
    return grad, u_mat, v_mat


D_FACTOR = np.array([[1.5, 0, 0, 0], [0.2, 0.8, 0, 0], [-0.4, 0.1, 1.1, 0], [0.3, 0.3, -0.2, 0.6]])
SVS = np.array([4.0, 2.0, 1.0, 0.5])


def test_singular_values_known():
    grad, _, _ = known_gradient(SVS, D_FACTOR)
    np.testing.assert_allclose(analysis.singular_values(grad, D_FACTOR), SVS, atol=1e-12)
    np.testing.assert_allclose(analysis.singular_values(grad @ D_FACTOR), SVS, atol=1e-12)


def test_relative_memory_known():
    grad, _, v_mat = known_gradient(SVS, D_FACTOR)
    z_inv = np.linalg.inv(D_FACTOR)
    for j, sv in enumerate(SVS):
        diff = 3.0 * D_FACTOR @ v_mat[:, j]  # Z·diff ∝ v_j
        direction = analysis.normalised_direction(diff, z_inv)
        np.testing.assert_allclose(direction, v_mat[:, j], atol=1e-12)
        assert analysis.relative_memory(grad, D_FACTOR, direction) == pytest.approx(sv / SVS[0], abs=1e-12)
    with pytest.raises(UserError, match="is zero"):
        analysis.normalised_direction(np.zeros(4), z_inv)


def test_subspace_cosine_known():
    grad, _, v_mat = known_gradient(SVS, D_FACTOR)
    direction = (v_mat[:, 0] + v_mat[:, 2]) / np.sqrt(2)
    expected = {1: (np.sqrt(0.5), 4 / 7.5), 2: (np.sqrt(0.5), 6 / 7.5), 3: (1.0, 7 / 7.5), 4: (1.0, 1.0)}
    for columns, (cosine, share) in expected.items():
        got = analysis.subspace_cosine(grad, D_FACTOR, direction, columns)
        assert got == pytest.approx((cosine, 100 * share), abs=1e-10)
    with pytest.raises(UserError, match="THR 5 must be between 1 and 4"):
        analysis.subspace_cosine(grad, D_FACTOR, direction, 5)


def test_format_number():
    assert analysis.format_number(np.float64(0.1)) == "0.1"
    assert analysis.format_number(np.float32(0.5)) == "0.5"


# ---------------------------------------------------------------------------- files

def test_load_array_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        analysis.load_array(tmp_path / "x.npy", "thing")
    write(tmp_path / "bad.npy", "not numpy")
    with pytest.raises(UserError, match="bad.npy is not a readable .npy array"):
        analysis.load_array(tmp_path / "bad.npy", "thing")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="obj.npy is not a readable"):
        analysis.load_array(tmp_path / "obj.npy", "thing")
    np.save(tmp_path / "nan.npy", np.array([1.0, np.nan]))
    with pytest.raises(UserError, match="NaN"):
        analysis.load_array(tmp_path / "nan.npy", "thing")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    analysis.atomic_write_text(target, "old\n")

    def failing(tmp):
        with open(tmp, "w") as handle:
            handle.write("half")
        raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError):
        analysis.atomic_write(target, failing)
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_check_not_input(tmp_path):
    path = write(tmp_path / "a.npy", "x")
    with pytest.raises(UserError, match="refusing to overwrite input file"):
        analysis.check_not_input(str(tmp_path / "." / "a.npy"), [str(path)])
    analysis.check_not_input(tmp_path / "b.npy", [path, None])


def test_read_word2vec_text(tmp_path):
    path = write(tmp_path / "w2v.txt", "3 2\nthe 0.5 1\ncat -1 2.5e-1\ndog 3 4\n")
    words, vecs = analysis.read_word2vec_text(path, keep={"dog", "the", "emu"})
    assert words == ["the", "dog"] and vecs.dtype == np.float32
    np.testing.assert_array_equal(vecs, [[0.5, 1], [3, 4]])
    with pytest.raises(UserError, match=r"w2v2.txt line 2: vector of 1 values, expected 2"):
        analysis.read_word2vec_text(write(tmp_path / "w2v2.txt", "a 1 2\nb 1\n"))
    with pytest.raises(UserError, match=r"w2v3.txt line 1: the vector of 'a' holds a value that is not a number"):
        analysis.read_word2vec_text(write(tmp_path / "w2v3.txt", "a 1 x\n"))
    with pytest.raises(UserError, match="line 2: word 'a' already listed on line 1"):
        analysis.read_word2vec_text(write(tmp_path / "w2v4.txt", "a 1 2\na 1 2\n"))
    with pytest.raises(UserError, match="no vector for any word"):
        analysis.read_word2vec_text(path, keep={"emu"})

"""Shared readers, writers and linear algebra of the state-gradient analysis scripts (numpy/scipy only)."""
# Shape letters: N number of matrices, H state size, E embedding size, W words (rows of an embedding matrix).
import os
import re
import zipfile

import numpy as np

from state_gradients.core.errors import UserError
# The file formats shared with the gradient pass live in state_gradients.core.formats and the atomic
# writes in state_gradients.core.fileio; the analysis scripts reach them through this module.
from state_gradients.core.fileio import atomic_save_npy, atomic_write, atomic_write_text, read_lines  # noqa: F401
from state_gradients.core.formats import (MAPPING_NAME, NO_TAGS, NPZ_NAME, available_classes, average_path, check_dir,
                                          class_name, count_path, list_averages, read_grad_mapping, read_pos_class,
                                          read_pos_mapping, write_pos_mapping)

# --------------------------------------------------------------------------------------------
# Output paths
# --------------------------------------------------------------------------------------------

def check_not_input(out_path, inputs):
    """UserError when out_path is one of the input files (same path or same file via links)."""
    out_real = os.path.realpath(out_path)
    for inp in inputs:
        if inp is None:
            continue
        if os.path.realpath(inp) == out_real or (
                os.path.exists(out_path) and os.path.exists(inp) and os.path.samefile(out_path, inp)):
            raise UserError(f"refusing to overwrite input file {inp} with output {out_path}")


# --------------------------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------------------------

def load_array(path, what, ndim=None):
    """np.load a .npy file (allow_pickle=False) as a float array; UserError for a missing/bad file or ndim."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"{what} {path} does not exist")
    if os.path.isdir(path):
        raise UserError(f"{what} {path} is a directory, expected a .npy file")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UserError(f"{what} {path} is not a readable .npy array ({str(err).splitlines()[0]})") from None
    if isinstance(array, np.lib.npyio.NpzFile):
        array.close()
        raise UserError(f"{what} {path} is an .npz archive, expected a single .npy array")
    if not np.issubdtype(array.dtype, np.number):
        raise UserError(f"{what} {path} has dtype {array.dtype}, expected numbers")
    if ndim is not None and array.ndim != ndim:
        shape_words = {1: "a vector", 2: "a matrix"}.get(ndim, f"{ndim}-D")
        raise UserError(f"{what} {path} has shape {array.shape}, expected {shape_words}")
    if not np.all(np.isfinite(array)):
        raise UserError(f"{what} {path} contains NaN or infinite values")
    return array


def check_square(matrix, path, size, size_from):
    """UserError unless matrix is size x size (size taken from size_from, named in the message)."""
    if matrix.shape != (size, size):
        raise UserError(f"{path} has shape {matrix.shape}, expected ({size}, {size}) "
                        f"to match the embedding size of {size_from}")


# --------------------------------------------------------------------------------------------
# Gradient dumps: GRADROOT/timestep_{t}/delay_{k}/{n}.npy | all.npz, mapping.txt
# --------------------------------------------------------------------------------------------

_NUMBERED_NPY = re.compile(r"^(\d+)\.npy$")
_TIMESTEP_DIR = re.compile(r"^timestep_(\d+)$")
CHUNK = 256  # matrices summed at once: bounds memory for folders of tens of thousands of matrices


def list_numbered_npy(directory):
    """(n, path) of every `{n}.npy` in directory, in increasing n; UserError for other .npy names."""
    found = []
    for name in os.listdir(directory):
        match = _NUMBERED_NPY.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, name)))
        elif name.endswith(".npy"):
            raise UserError(f"{os.path.join(directory, name)}: unexpected .npy file in a gradient folder "
                            "(only {n}.npy matrices belong there)")
    return sorted(found)


def delay_dirs(gradroot, delay):
    """The delay folders holding G[t, delay]: GRADROOT/timestep_*/delay_{k} in increasing t.

    When GRADROOT has no timestep_* folders but a delay_{k} folder itself (a single-time-step
    run whose grad_dir is passed directly), that folder is used. UserError when there is none.
    """
    check_dir(gradroot, "gradient directory")
    name = f"delay_{delay}"
    steps = sorted((int(m.group(1)), entry) for entry in os.listdir(gradroot)
                   if (m := _TIMESTEP_DIR.match(entry)) and os.path.isdir(os.path.join(gradroot, entry)))
    if steps:
        dirs = [os.path.join(gradroot, entry, name) for _, entry in steps
                if os.path.isdir(os.path.join(gradroot, entry, name))]
    else:
        direct = os.path.join(gradroot, name)
        dirs = [direct] if os.path.isdir(direct) else []
    if not dirs:
        where = "timestep_*/" if steps else "timestep_*/ or "
        raise UserError(f"no {where}{name} folder in {gradroot}: no gradient matrices for delay {delay}")
    return dirs


def _check_matrix(array, path, shape):
    """UserError unless array (one gradient matrix or a stack of them) has the folder's (H, E) shape."""
    if shape is not None and array.shape[-2:] != shape:
        raise UserError(f"{path} holds matrices of shape {array.shape[-2:]}, expected {shape} "
                        "like the matrices read before it")
    return array.shape[-2:]


def _npz_chunks(path, chunk):
    """Yield consecutive row blocks [n, H, E] of `arr_0` in an .npz without loading it whole."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise UserError(f"{path} is not a readable .npz archive ({err})") from None
    with archive:
        if "arr_0.npy" not in archive.namelist():
            raise UserError(f"{path} has no array arr_0 (expected the output of np2npz.py)")
        with archive.open("arr_0.npy") as handle:
            try:
                version = np.lib.format.read_magic(handle)
                reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                          else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = reader(handle)
            except ValueError as err:
                raise UserError(f"{path}: arr_0 is not a valid array ({err})") from None
            if len(shape) != 3 or dtype.hasobject or not np.issubdtype(dtype, np.number):
                raise UserError(f"{path}: arr_0 has shape {shape} and dtype {dtype}, "
                                "expected numbers of shape (N, H, E)")
            if fortran:
                # Not written by np2npz.py; rare enough to read whole.
                with np.load(path, allow_pickle=False) as data:
                    stack = data["arr_0"]
                for start in range(0, shape[0], chunk):
                    yield stack[start:start + chunk]
                return
            row_bytes = dtype.itemsize * shape[1] * shape[2]
            for start in range(0, shape[0], chunk):
                rows = min(chunk, shape[0] - start)
                data = handle.read(rows * row_bytes)
                if len(data) != rows * row_bytes:
                    raise UserError(f"{path}: arr_0 is truncated ({shape[0]} rows announced)")
                yield np.frombuffer(data, dtype=dtype).reshape(rows, shape[1], shape[2])


def iter_delay_matrices(directory, use_npz=None, chunk=CHUNK):
    """Yield (numbers, stack [n, H, E]) over the gradient matrices of one delay folder.

    use_npz None: the `{n}.npy` files if any (numbers = n), else `all.npz` (numbers = row
    index); True: only `all.npz`; False: only `{n}.npy`. Matrices come in numeric order and
    all must share one (H, E) shape. UserError when the folder has no matrices.
    """
    files = [] if use_npz else list_numbered_npy(directory)
    npz = os.path.join(directory, NPZ_NAME)
    if not files and use_npz is not False and os.path.isfile(npz):
        shape, start = None, 0
        for stack in _npz_chunks(npz, chunk):
            shape = _check_matrix(stack, npz, shape)
            yield np.arange(start, start + len(stack)), stack
            start += len(stack)
        if start == 0:
            raise UserError(f"{npz} holds no matrices")
        return
    if not files:
        wanted = {None: f"no {{n}}.npy files and no {NPZ_NAME}", True: f"no {NPZ_NAME}",
                  False: "no {n}.npy files"}[use_npz]
        raise UserError(f"gradient folder {directory} has {wanted}: no matrices for this delay")
    shape = None
    for start in range(0, len(files), chunk):
        block = files[start:start + chunk]
        mats = [load_array(path, "gradient matrix", ndim=2) for _, path in block]
        for (_, path), mat in zip(block, mats):
            shape = _check_matrix(mat, path, shape)
        yield np.array([n for n, _ in block]), np.stack(mats)


def stack_to_npz(directory):
    """Stack every `{n}.npy` of directory, in increasing n, into directory/all.npz (array arr_0 [N, H, E]).

    Streams the matrices into the compressed archive one at a time (a delay folder of a full
    PTB dump is several GB). Atomic. Returns (N, (H, E)). UserError for an empty folder or
    matrices of different shapes or dtypes.
    """
    check_dir(directory)
    files = list_numbered_npy(directory)
    if not files:
        raise UserError(f"directory {directory} has no {{n}}.npy files to stack")
    first = load_array(files[0][1], "gradient matrix", ndim=2)
    header = {"descr": np.lib.format.dtype_to_descr(first.dtype), "fortran_order": False,
              "shape": (len(files),) + first.shape}

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            with archive.open("arr_0.npy", "w", force_zip64=True) as handle:
                np.lib.format.write_array_header_2_0(handle, header)
                for _, path in files:
                    matrix = load_array(path, "gradient matrix", ndim=2)
                    _check_matrix(matrix, path, first.shape)
                    if matrix.dtype != first.dtype:
                        raise UserError(f"{path} has dtype {matrix.dtype}, expected {first.dtype} "
                                        f"like {files[0][1]}")
                    handle.write(np.ascontiguousarray(matrix).tobytes())
    atomic_write(os.path.join(directory, NPZ_NAME), write)
    return len(files), first.shape


def _window_words(directory, use_npz):
    """word(number) for the matrices of one delay folder, from its mapping.txt.

    `{n}.npy` files are matched to the mapping line numbered n; rows of `all.npz` (stacked
    in increasing n by np2npz.py) to the mapping lines sorted by n, which must be as many.
    """
    path = os.path.join(directory, MAPPING_NAME)
    entries = sorted(read_grad_mapping(path))
    if use_npz:
        words = [word for _, word, _ in entries]

        def word_of(row):
            if row >= len(words):
                raise UserError(f"{path} has {len(words)} lines but {os.path.join(directory, NPZ_NAME)} "
                                f"has more matrices (row {row})")
            return words[row]
        return word_of, len(words)
    by_number = {n: word for n, word, _ in entries}

    def word_of(n):
        if n not in by_number:
            raise UserError(f"{path} has no line for window {n} ({os.path.join(directory, f'{n}.npy')})")
        return by_number[n]
    return word_of, None


def average_gradients(gradroot, delay, use_npz=None, classes=None, pos_mapping=None):
    """Mean gradient matrix of one delay over all windows and time steps, overall or per POS class.

    classes: None for the overall mean, or {name: set of tags}; a window belongs to a class
    when its word at t-k (mapping.txt) has any tag in it (pos_mapping: word -> tags; words
    missing from it have no tags). Sums in float64. Returns (averages, counts, missing) with
    averages {name or None: float32 [H, E]}, counts {name or None: int} and missing the
    set of words not found in pos_mapping. UserError when a class (or the delay) has no matrix.
    """
    keys = [None] if classes is None else list(classes)
    sums, counts, missing = {}, {key: 0 for key in keys}, set()
    for directory in delay_dirs(gradroot, delay):
        has_npy = use_npz is not True and bool(list_numbered_npy(directory))
        folder_npz = use_npz or not has_npy
        if classes is not None:
            word_of, n_lines = _window_words(directory, folder_npz)
        rows_seen = 0
        for numbers, stack in iter_delay_matrices(directory, use_npz=use_npz):
            rows_seen += len(stack)
            if classes is None:
                masks = {None: slice(None)}
            else:
                tags = []
                for number in numbers:
                    word = word_of(int(number))
                    if word not in pos_mapping:
                        missing.add(word)
                    tags.append(pos_mapping.get(word, set()))
                masks = {name: np.array([bool(t & wanted) for t in tags]) for name, wanted in classes.items()}
            for key, mask in masks.items():
                picked = stack[mask]
                if len(picked):
                    total = np.sum(picked, axis=0, dtype=np.float64)
                    sums[key] = total if key not in sums else sums[key] + total
                    counts[key] += len(picked)
        if classes is not None and folder_npz and rows_seen != n_lines:
            raise UserError(f"{os.path.join(directory, MAPPING_NAME)} has {n_lines} lines but "
                            f"{os.path.join(directory, NPZ_NAME)} holds {rows_seen} matrices")
    for key in keys:
        if counts[key] == 0:
            raise UserError(f"no window at delay {delay} in {gradroot} has a word with a tag of class "
                            f"{key} (check the POS class file and POS mapping)")
    averages = {key: (sums[key] / counts[key]).astype(np.float32) for key in keys}
    return averages, counts, missing


def load_averages(gradroot, cls=None, grad_norm=None, grad_norm_path=None):
    """[(k, G)] for the averages of gradroot (see list_averages), each G checked against D.

    grad_norm: optional D [E, E]; every G must be [H, E] with E its size. UserError otherwise.
    """
    result = []
    for delay, path in list_averages(gradroot, cls):
        matrix = load_array(path, "average gradient matrix", ndim=2)
        if grad_norm is not None and matrix.shape[1] != grad_norm.shape[0]:
            raise UserError(f"{path} has shape {matrix.shape} but {grad_norm_path} is "
                            f"{grad_norm.shape}: the embedding sizes differ")
        result.append((delay, matrix))
    return result


# --------------------------------------------------------------------------------------------
# Normalisation of the embedding space
# --------------------------------------------------------------------------------------------

def covariance_factor(cov, source):
    """Lower Cholesky factor D of cov (C = D Dᵀ); UserError naming the degenerate dimension.

    The first dimension j whose leading (j+1)x(j+1) block is not positive definite is constant
    (zero variance) or a linear combination of dimensions 0..j-1.
    """
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        pass
    variances = np.diag(cov)
    for j in range(cov.shape[0]):
        if variances[j] <= 0:
            raise UserError(f"covariance of {source} is singular: dimension {j} has zero variance "
                            "(constant over all words); remove it or retrain the embeddings")
        try:
            np.linalg.cholesky(cov[:j + 1, :j + 1])
        except np.linalg.LinAlgError:
            raise UserError(f"covariance of {source} is singular: dimension {j} is a linear combination "
                            f"of dimensions 0..{j - 1}; remove it, or use more (and more varied) words "
                            "than dimensions") from None
    raise UserError(f"covariance of {source} is not positive definite")


def normalisation(emb, source):
    """Mean m [E], covariance C [E, E] (rows of emb = words), D with C = D Dᵀ and Z = D⁻¹, in float64.

    D normalises gradients (G·D), Z normalises embeddings (Z·x has identity covariance).
    """
    if emb.ndim != 2 or emb.shape[0] < 2:
        raise UserError(f"{source} has shape {emb.shape}, expected a matrix with one row per word")
    if emb.shape[0] <= emb.shape[1]:
        raise UserError(f"{source} has {emb.shape[0]} rows for {emb.shape[1]} dimensions: the covariance "
                        "is singular; it needs more words (rows) than dimensions")
    emb = emb.astype(np.float64)
    mean = emb.mean(axis=0)
    cov = np.atleast_2d(np.cov(emb, rowvar=False))
    d_factor = covariance_factor(cov, source)
    import scipy.linalg  # here: only the normalisation needs it

    z_inv = scipy.linalg.solve_triangular(d_factor, np.eye(len(d_factor)), lower=True)
    return mean, cov, d_factor, z_inv


NORMALISATION_FILES = ("mean", "covar", "D_norm_grad", "Z_norm_emb")


def write_normalisation(emb_path):
    """normalize_equal_variance.py's job: EMB_{mean,covar,D_norm_grad,Z_norm_emb}.npy beside EMB.npy [V, E].

    Returns (emb [V, E], {name: path}, (mean, cov, d_factor, z_inv)).
    """
    emb = load_array(emb_path, "embedding matrix", ndim=2)
    base = emb_path[:-4] if emb_path.endswith(".npy") else emb_path
    paths = {name: f"{base}_{name}.npy" for name in NORMALISATION_FILES}
    for path in paths.values():
        check_not_input(path, [emb_path])
    arrays = normalisation(emb, emb_path)
    for name, array in zip(NORMALISATION_FILES, arrays):
        atomic_save_npy(paths[name], array)
    return emb, paths, arrays


def sanity_checks(emb, mean, cov, d_factor, z_inv):
    """Numbers that should be small (or, for the condition number, below about 100).

    Returns dict: centred_mean (max |mean of emb - m|), identity_error (max |Z C Zᵀ - I|),
    factor_error (max |D Dᵀ - C|), condition_z (σ_max/σ_min of Z), normalised_cov_error
    (max |cov(Z x) - I|).
    """
    emb = emb.astype(np.float64)
    eye = np.eye(len(cov))
    sv_z = np.linalg.svd(z_inv, compute_uv=False)
    normed = (emb - mean) @ z_inv.T
    return {
        "centred_mean": float(np.max(np.abs((emb - mean).mean(axis=0)))),
        "identity_error": float(np.max(np.abs(z_inv @ cov @ z_inv.T - eye))),
        "factor_error": float(np.max(np.abs(d_factor @ d_factor.T - cov))),
        "condition_z": float(sv_z[0] / sv_z[-1]),
        "normalised_cov_error": float(np.max(np.abs(np.atleast_2d(np.cov(normed, rowvar=False)) - eye))),
    }


# --------------------------------------------------------------------------------------------
# Singular-value measures
# --------------------------------------------------------------------------------------------

def singular_values(grad, grad_norm=None):
    """Singular values (decreasing, float64) of G·D, or of G when grad_norm is None."""
    matrix = grad.astype(np.float64)
    if grad_norm is not None:
        matrix = matrix @ grad_norm.astype(np.float64)
    return np.linalg.svd(matrix, compute_uv=False)


def normalised_direction(diff, z_inv, source="difference vector"):
    """d̂ = Z·diff / ‖Z·diff‖ (float64); UserError when diff is zero."""
    direction = z_inv.astype(np.float64) @ diff.astype(np.float64)
    norm = np.linalg.norm(direction)
    if norm == 0:
        raise UserError(f"{source} is zero: it gives no direction")
    return direction / norm


def relative_memory(grad, grad_norm, direction):
    """‖(G·D) d̂‖ / σ_max(G·D): how much of the largest possible gain G·D gives direction d̂."""
    matrix = grad.astype(np.float64) @ grad_norm.astype(np.float64)
    sv_max = np.linalg.svd(matrix, compute_uv=False)[0]
    if sv_max == 0:
        return float("nan")
    return float(np.linalg.norm(matrix @ direction) / sv_max)


def subspace_cosine(grad, grad_norm, direction, columns):
    """(‖V_xᵀ d̂‖, 100·Σ_{i<x} σ_i / Σ σ) for G·D = U S Vᵀ and x = columns (top right singular vectors).

    The first number is the cosine between d̂ and the span of the first x columns of V.
    """
    matrix = grad.astype(np.float64) @ grad_norm.astype(np.float64)
    _, svs, vt = np.linalg.svd(matrix, full_matrices=False)
    if not 1 <= columns <= len(svs):
        raise UserError(f"THR {columns} must be between 1 and {len(svs)} (the number of singular values)")
    total = svs.sum()
    percent = float(100.0 * svs[:columns].sum() / total) if total > 0 else float("nan")
    return float(np.linalg.norm(vt[:columns] @ direction)), percent


def format_number(value):
    """A float as Python prints it (shortest round-trip repr), like the original's print."""
    return repr(float(value))


# --------------------------------------------------------------------------------------------
# Word lists and word2vec
# --------------------------------------------------------------------------------------------

def read_dict_words(path):
    """Words of a dictionary file (first field of each non-blank line, e.g. `word<TAB>id`), in order."""
    words = [line.split()[0] for line in read_lines(path, "dictionary file") if line.strip()]
    if not words:
        raise UserError(f"dictionary file {path} is empty")
    return words


def read_word2vec_text(path, keep=None):
    """Read word2vec text vectors: (words, float32 [W, E]) in file order, only words in keep (if given).

    An optional first line `count dim` is skipped. UserError names file and line for a value that
    is not a number, a vector of the wrong length, or a word listed twice.
    """
    words, rows, seen, size = [], [], {}, None
    for lineno, line in enumerate(read_lines(path, "word2vec file"), start=1):
        fields = line.split()
        if not fields or (lineno == 1 and len(fields) == 2 and all(f.isdigit() for f in fields)):
            continue
        if len(fields) < 2:
            raise UserError(f"{path} line {lineno}: expected a word followed by its vector")
        word = fields[0]
        if word in seen:
            raise UserError(f"{path} line {lineno}: word {word!r} already listed on line {seen[word]}")
        seen[word] = lineno
        if size is None:
            size = len(fields) - 1
        elif len(fields) - 1 != size:
            raise UserError(f"{path} line {lineno}: vector of {len(fields) - 1} values, "
                            f"expected {size} like the lines before")
        if keep is not None and word not in keep:
            continue
        try:
            rows.append(np.array([float(v) for v in fields[1:]], dtype=np.float32))
        except ValueError:
            raise UserError(f"{path} line {lineno}: the vector of {word!r} holds a value that is "
                            "not a number") from None
        words.append(word)
    if not rows:
        raise UserError(f"{path} has no vector for any word in the dictionary" if keep is not None
                        else f"{path} holds no vectors")
    return words, np.stack(rows)


# --------------------------------------------------------------------------------------------
# Inputs shared by the command lines
# --------------------------------------------------------------------------------------------

def load_square(path, what):
    """A square float64 matrix from a .npy file (D or Z); UserError otherwise."""
    matrix = load_array(path, what, ndim=2)
    if matrix.shape[0] != matrix.shape[1]:
        raise UserError(f"{what} {path} has shape {matrix.shape}, expected a square matrix")
    return matrix.astype(np.float64)


def load_direction(diff_path, z_path):
    """(d̂ [E], Z [E, E]) from a difference vector file and Z = D⁻¹ file; UserError on shape mismatch."""
    diff = load_array(diff_path, "difference vector", ndim=1)
    z_inv = load_square(z_path, "embedding normalisation Z")
    check_square(z_inv, z_path, len(diff), diff_path)
    return normalised_direction(diff, z_inv, f"difference vector {diff_path}"), z_inv

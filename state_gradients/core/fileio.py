"""Text files read with one-line errors, and atomic writes (temporary name, then rename)."""
import hashlib
import os
import secrets

import numpy as np

from state_gradients.core.errors import UserError


def read_text(path, what="file", encoding="utf-8", newline=None):
    """The whole text of a file; UserError naming the file when it cannot be read or decoded.

    newline="" keeps '\\r' as it is (the LM data: only '\\n' ends a line, as in the original).
    """
    try:
        with open(path, encoding=encoding, newline=newline) as handle:
            return handle.read()
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a directory, expected a file") from None
    except LookupError:
        raise UserError(f"unknown encoding {encoding!r} (config key encoding) for {what} {path}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{what} {path} cannot be decoded as {encoding} ({err.reason} at byte {err.start})"
                        + ("" if encoding == "utf-8" else "; see config key encoding")) from None
    except OSError as err:
        raise UserError(f"cannot read {what} {path}: {err.strerror}") from None


def read_lines(path, what="file"):
    """Lines of a UTF-8 text file without line endings."""
    return read_text(path, what).splitlines()


def make_dirs(path, what="output folder"):
    """os.makedirs(path, exist_ok=True); UserError when path, or a folder above it, is a file."""
    head = path
    while head and not os.path.exists(head):
        head = os.path.dirname(head)
    if head and not os.path.isdir(head):
        raise UserError(f"{what} {path}: {head} is a file, not a folder")
    os.makedirs(path, exist_ok=True)


def atomic_write(path, write):
    """Call write(tmp_path) on a temporary name beside path, then rename it to path.

    A crash or interrupt never leaves a complete-looking half file under the final name. The
    temporary name starts with '.' and ends with '.tmp', so no glob for *.npy or *.npz sees it;
    it is created with the usual umask mode (mkstemp's 0600 would stick to the result).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_bytes(path, data):
    """Atomically write bytes to path."""
    def write(tmp):
        with open(tmp, "xb") as handle:
            handle.write(data)
    atomic_write(path, write)


def atomic_write_text(path, text):
    """Write text (UTF-8) to path via a temporary file and os.replace."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
    atomic_write(path, write)


def atomic_save_npy(path, array):
    """np.save array to path via a temporary file and os.replace (no `.npy` appended to the name)."""
    def write(tmp):
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
    atomic_write(path, write)


def md5_of(data):
    return hashlib.md5(data).hexdigest()


def install_checked(out_dir, md5, load, log=print):
    """Put the files of md5 ({relative name: md5}) missing from out_dir there; return the paths written.

    Present files must already have their md5. load(names) -> ({name: bytes}, {name: where it came
    from}) fetches the missing ones; nothing is written until every one of them has passed its
    check, so a bad source leaves out_dir untouched.
    """
    missing = []
    for name, digest in md5.items():
        target = os.path.join(out_dir, name)
        if not os.path.exists(target):
            missing.append(name)
            continue
        with open(target, "rb") as handle:
            if md5_of(handle.read()) != digest:
                raise UserError(f"{target} exists with the wrong md5 (expected {digest}); remove it and rerun")
        log(f"{target}: already present, md5 ok")
    if not missing:
        return []
    files, origin = load(missing)
    for name in missing:
        if md5_of(files[name]) != md5[name]:
            raise UserError(f"{name} from {origin[name]}: md5 {md5_of(files[name])} differs from the expected "
                            f"{md5[name]}; nothing written")
    written = []
    for name in missing:
        target = os.path.join(out_dir, name)
        write_bytes(target, files[name])
        log(f"{target}: written, md5 ok")
        written.append(target)
    return written


def table_csv(rows, header):
    """The text of a CSV file: the header row, then rows as given (csv module quoting, '\\n' line ends)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()

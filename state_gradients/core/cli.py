"""What every command line shares: its parser, the name it was typed as, a quiet TensorFlow, one-line errors."""
# Nothing here imports TensorFlow at module level: a command parses its arguments (and answers
# --help, --version and usage errors) before TensorFlow loads, which takes seconds.
import argparse
import os
import pathlib
import sys
import tempfile

from state_gradients.core.errors import UserError
from state_gradients.core.version import __version__

_typed = []   # the names the running commands were typed as (innermost last)


def typed_name(default):
    """The name the running command was typed as (`sg-report`, `report.py`), else default."""
    return _typed[-1] if _typed else default


def typed_command(prog, argv):
    """The command line as the user typed it (for provenance): its name, then argv (sys.argv's when None)."""
    import shlex

    return shlex.join([typed_name(prog), *(sys.argv[1:] if argv is None else argv)])


def make_parser(prog, description=None, *, tensorflow=False, **options):
    """An ArgumentParser named as the command was typed (else prog), with --version.

    tensorflow: the command loads TensorFlow; it gets --verbose, which shows TensorFlow's own
    start-up and log messages (hidden by default, see import_tensorflow).
    """
    parser = argparse.ArgumentParser(prog=typed_name(prog), description=description, **options)
    parser.add_argument("--version", action="version", version=f"%(prog)s (state-gradients {__version__})")
    if tensorflow:
        parser.add_argument("--verbose", action="store_true",
                            help="show TensorFlow's start-up and log messages (hidden by default)")
    return parser


def import_tensorflow(verbose=False):
    """Import and return TensorFlow for a command line: unless verbose, without its banner and log lines.

    TensorFlow's C++ side prints its start-up lines (oneDNN, CUDA drivers, CPU features) through
    absl before TF_CPP_MIN_LOG_LEVEL is read, so they go to a temporary file while it loads
    (replayed when the import fails); level 3 also hides the `failed call to cuInit` error of a
    machine without a GPU. The first import in a process decides: later calls return the module.
    """
    if verbose or "tensorflow" in sys.modules:
        import tensorflow as tf
        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            os.write(saved, sink.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    import absl.logging

    tf.get_logger().setLevel("ERROR")
    absl.logging.set_verbosity(absl.logging.ERROR)
    return tf


def output_line(what, path):
    """The last line of a long job: where its main output is, as a link a terminal can open."""
    return f"{what}: {pathlib.Path(path).resolve().as_uri()}"


def run_cli(main_body, argv, prog):
    """Call main_body(argv) and return its exit status; a user's mistake becomes `NAME: error: message`, status 2.

    NAME is the command as typed (sys.argv[0]'s base name) when argv is None, i.e. when the
    command runs from a shell; prog when a caller passes argv.
    """
    name = prog
    if argv is None and sys.argv and sys.argv[0] not in ("", "-c"):
        name = os.path.basename(sys.argv[0])
    _typed.append(name)
    try:
        return main_body(argv)
    except SystemExit as exit_:
        # argparse's --help (0) and usage errors (2, after printing the usage): a status, so that
        # every main(argv) returns one and in-process callers are never ended by it
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except UserError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, as Unix tools do; pointing stdout
        # at /dev/null keeps Python's exit-time flush from raising again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as err:
        # the file system refused (a file where a folder belongs, no permission, a full disk):
        # the user's environment, not a bug, when the error names a path
        if err.filename is None:
            raise
        print(f"{name}: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    finally:
        _typed.pop()


def progress_bar(iterable=None, *, stream=None, **options):
    """A tqdm progress bar on stream (default stderr), shown only when that stream is a terminal."""
    from tqdm import tqdm  # imported here: only long loops need it

    stream = stream or sys.stderr
    return tqdm(iterable, file=stream, disable=not stream.isatty(), dynamic_ncols=True, **options)

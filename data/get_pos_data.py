"""Put the POS-tagged corpora of the POS mapping (CoNLL-2000, Penn Treebank sample; md5-checked) into data/pos_tagged/."""
# Layout written (the one build_pos_mapping.py and sg-reproduce --pos-data expect):
#
#   OUT/conll2000/train.txt, OUT/conll2000/test.txt      `word TAG CHUNK` lines
#   OUT/treebank_sample/wsj_0001-0199.pos                the sample's tagged files wsj_0001..wsj_0199,
#                                                        joined in order
#
# Sources: NLTK's data packages conll2000.zip and treebank.zip (downloaded, or found in --from
# DIR), an nltk_data folder (--from DIR with corpora/conll2000/ and corpora/treebank/tagged/),
# or a folder in the layout above (--from /data/pos_tagged). Every file is checked
# against the md5 below before anything is written.
import io
import os
import re
import sys
import urllib.error
import urllib.request
import zipfile

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402
from state_gradients.core.fileio import install_checked  # noqa: E402

URL = "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/{name}.zip"
CONLL = ("conll2000/train.txt", "conll2000/test.txt")
TREEBANK = "treebank_sample/wsj_0001-0199.pos"
# md5 of the files as this project uses them (the CoNLL files unchanged; the treebank sample's
# 199 tagged files joined in order without separators).
MD5 = {
    "conll2000/train.txt": "2e2f24e90e20fcb910ab2251b5ed8cd0",
    "conll2000/test.txt": "56944df34be553b72a2a634e539a0951",
    TREEBANK: "c17e4a5b7e8210a46fa5efecbf23f12b",
}
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pos_tagged")
_TAGGED = re.compile(r"^wsj_(\d{4})\.pos$")


def join_tagged(files):
    """The treebank sample file: {name: bytes} of wsj_NNNN.pos files joined in numeric order."""
    numbered = sorted((int(m.group(1)), name) for name in files if (m := _TAGGED.match(os.path.basename(name))))
    if not numbered:
        raise UserError("no wsj_NNNN.pos files found in the treebank source")
    return b"".join(files[name] for _, name in numbered)


def from_zips(conll_zip, treebank_zip, origin):
    """{output name: bytes} from NLTK's conll2000.zip and treebank.zip (bytes)."""
    out = {}
    try:
        with zipfile.ZipFile(io.BytesIO(conll_zip)) as archive:
            for name in CONLL:
                out[name] = archive.read(name)
        with zipfile.ZipFile(io.BytesIO(treebank_zip)) as archive:
            tagged = {n: archive.read(n) for n in archive.namelist() if n.startswith("treebank/tagged/")
                      and _TAGGED.match(os.path.basename(n))}
    except (zipfile.BadZipFile, KeyError) as err:
        raise UserError(f"{origin}: not NLTK's conll2000.zip / treebank.zip ({err})") from None
    out[TREEBANK] = join_tagged(tagged)
    return out


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def from_folder(directory):
    """{output name: bytes} from a local folder: this layout, an nltk_data folder, or the two zips."""
    if all(os.path.isfile(os.path.join(directory, n)) for n in (*CONLL, TREEBANK)):
        return {n: _read(os.path.join(directory, n)) for n in (*CONLL, TREEBANK)}
    zips = [os.path.join(directory, f"{n}.zip") for n in ("conll2000", "treebank")]
    if all(os.path.isfile(z) for z in zips):
        return from_zips(_read(zips[0]), _read(zips[1]), directory)
    corpora = os.path.join(directory, "corpora") if os.path.isdir(os.path.join(directory, "corpora")) else directory
    conll = [os.path.join(corpora, n) for n in CONLL]
    tagged_dir = os.path.join(corpora, "treebank", "tagged")
    if all(os.path.isfile(p) for p in conll) and os.path.isdir(tagged_dir):
        out = {n: _read(p) for n, p in zip(CONLL, conll)}
        out[TREEBANK] = join_tagged({n: _read(os.path.join(tagged_dir, n)) for n in os.listdir(tagged_dir)})
        return out
    raise UserError(f"--from {directory}: found neither {', '.join((*CONLL, TREEBANK))}, nor conll2000.zip and "
                    "treebank.zip, nor an nltk_data folder (corpora/conll2000/, corpora/treebank/tagged/)")


def download(fetch_url=None):
    """{output name: bytes} from NLTK's data packages on the web."""
    def default_fetch(url):
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                return response.read()
        except (urllib.error.URLError, OSError) as err:
            raise UserError(f"cannot download {url} ({err}); get the files elsewhere and use --from DIR") from None
    fetch_url = fetch_url or default_fetch
    urls = [URL.format(name=n) for n in ("conll2000", "treebank")]
    return from_zips(fetch_url(urls[0]), fetch_url(urls[1]), " and ".join(urls))


def fetch(out_dir, source_dir=None, log=print, fetch_url=None):
    """Write the missing files into out_dir once every one passed its md5 check; return the paths written."""
    def load(names):
        files = from_folder(source_dir) if source_dir else download(fetch_url)
        return files, {name: source_dir or "the download" for name in names}
    return install_checked(out_dir, MD5, load, log)


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(prog="get_pos_data.py", description=__doc__)
    parser.add_argument("--from", dest="source", metavar="DIR",
                        help="use a local copy instead of downloading NLTK's conll2000.zip and treebank.zip: a "
                             "folder in this layout (e.g. /data/pos_tagged), a folder holding the two "
                             "zips, or an nltk_data folder")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help="output directory (default: the pos_tagged/ directory beside this script)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    if args.source and not os.path.isdir(args.source):
        raise UserError(f"--from {args.source}: not a directory")
    fetch(args.out, args.source)
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv, "get_pos_data.py")


if __name__ == "__main__":
    sys.exit(main())

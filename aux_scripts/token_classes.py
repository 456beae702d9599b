"""sg-token-classes: the token tags and class files of a gradient pass with classes in context, and frequency-matched ones."""
# From the tagger's tags of a text (one tag per token, <eos> last: sg-pos-tagger's NAME.tags), the
# text itself and the training-frequency bin of every word (the FREQ_* tags that sg-freq-classes
# adds to a POS mapping), writes OUT/NAME.tags for the pos_tokens key: each token's field holds
#   - its tag, or UNK_<tag> when the word is <unk> (so that the plain classes hold known words only),
#   - <tag>+<BIN> (UNK_<tag>+<BIN> for <unk>) for its word's frequency bin BIN;
# and OUT/classes/*.txt, the class files of pos_classes:
#   - NAME.txt for every POS class file given: the tokens tagged in context with its tags (known words),
#   - NAME+unk.txt for the classes of --with-unk: the same with the <unk> tokens tagged so,
#   - NAME-freq_BIN.txt for the classes of --by-frequency and every bin: the class's known tokens of that bin.
# Classes are disjoint within each family (one tag per token), unlike the type-level mapping's.
import argparse
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aux_scripts import analysis  # noqa: E402
from tf_scripts import formats  # noqa: E402
from tf_scripts.errors import UserError, run_cli  # noqa: E402

PROG = "sg-token-classes"
UNK = "<unk>"
EOS = "<eos>"
UNK_PREFIX = "UNK_"
FREQ_PREFIX = "FREQ_"


def word_bins(mapping):
    """word -> its FREQ_* tag (words without one are left out); UserError for a word with two."""
    bins = {}
    for word, tags in mapping.items():
        found = sorted(t for t in tags if t.startswith(FREQ_PREFIX))
        if len(found) > 1:
            raise UserError(f"word {word!r} has two frequency bins in the POS mapping: {', '.join(found)}")
        if found:
            bins[word] = found[0]
    return bins


def token_fields(words, tags, bins):
    """The pos_tokens fields of one line: words [n], tags [n + 1] (<eos> last) -> [n + 1] strings."""
    fields = []
    for word, tag in zip(words, tags):
        own = UNK_PREFIX + tag if word == UNK else tag
        extra = [f"{own}+{bins[word]}"] if word in bins else []
        fields.append("|".join([own] + extra))
    return fields + [tags[-1]]


def class_files(pos_classes, with_unk, by_frequency, bin_tags):
    """{file name: tags} of the classes in context (see above); pos_classes {name: tags}."""
    out = {}
    for name, tags in pos_classes.items():
        out[f"{name}.txt"] = sorted(tags)
        if name in with_unk:
            out[f"{name}+unk.txt"] = sorted(tags | {UNK_PREFIX + t for t in tags})
        if name in by_frequency:
            for b in bin_tags:
                out[f"{name}-{b.lower()}.txt"] = sorted(f"{t}+{b}" for t in tags)
    return out


def _main(argv):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0] + " Writes OUT/NAME.tags (the "
                                     "pos_tokens file) and OUT/classes/*.txt (the pos_classes files).")
    parser.add_argument("text", metavar="TEXT", help="the LM text that was tagged (e.g. valid.txt)")
    parser.add_argument("tags", metavar="TAGS", help="its tags (sg-pos-tagger's NAME.tags)")
    parser.add_argument("pos_mapping", metavar="MAPPING", help="a POS mapping with the FREQ_* bins (sg-freq-classes)")
    parser.add_argument("--classes", nargs="+", required=True, metavar="CLASS.txt", help="POS class files")
    parser.add_argument("--with-unk", nargs="*", default=[], metavar="NAME",
                        help="classes that also get a NAME+unk class with the <unk> tokens")
    parser.add_argument("--by-frequency", nargs="*", default=[], metavar="NAME",
                        help="classes that also get one NAME-freq_BIN class per frequency bin")
    parser.add_argument("--out", required=True, metavar="DIR")
    args = parser.parse_args(argv)
    pos_classes = {formats.class_name(p): formats.read_pos_class(p) for p in args.classes}
    for name in args.with_unk + args.by_frequency:
        if name not in pos_classes:
            raise UserError(f"class {name!r} is not one of --classes ({', '.join(pos_classes)})")
    bins = word_bins(formats.read_pos_mapping(args.pos_mapping))
    bin_tags = sorted(set(bins.values()), key=lambda t: int(t[len(FREQ_PREFIX):].split("-")[0].rstrip("+")))
    if args.by_frequency and not bin_tags:
        raise UserError(f"{args.pos_mapping} has no FREQ_* tags: run sg-freq-classes first")
    text = analysis.read_lines(args.text, "text file")
    tag_lines = analysis.read_lines(args.tags, "tags file")
    if len(text) != len(tag_lines):
        raise UserError(f"{args.tags} has {len(tag_lines)} lines but {args.text} has {len(text)}")
    out_lines = []
    for lineno, (line, tags) in enumerate(zip(text, tag_lines), start=1):
        words, tags = line.split(), tags.split()
        if len(tags) != len(words) + 1:
            raise UserError(f"{args.tags} line {lineno}: {len(tags)} tags for {len(words)} words and <eos>")
        out_lines.append(" ".join(token_fields(words, tags, bins)) + "\n")
    os.makedirs(os.path.join(args.out, "classes"), exist_ok=True)
    name = os.path.basename(args.tags)
    analysis.atomic_write_text(os.path.join(args.out, name), "".join(out_lines))
    files = class_files(pos_classes, set(args.with_unk), set(args.by_frequency), bin_tags)
    for file, tags in files.items():
        analysis.atomic_write_text(os.path.join(args.out, "classes", file), "".join(t + "\n" for t in tags))
    print(f"{os.path.join(args.out, name)}: {len(out_lines)} lines; {len(files)} class files in "
          f"{os.path.join(args.out, 'classes')}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())

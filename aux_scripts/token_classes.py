"""sg-token-classes: the token tags and class files of a gradient pass with classes in context, and frequency-matched ones."""
# From the tagger's tags of a text (one tag per token, <eos> last: sg-pos-tagger's NAME.tags), the
# text itself and the training-frequency bin of every word (the FREQ_* tags that sg-freq-classes
# adds to a POS mapping), writes OUT/NAME.tags for the pos_tokens key: each token's field holds
#   - its tag, or UNK_<tag> when the word is <unk> (so that the plain classes hold known words only),
#   - <tag>+<BIN> (UNK_<tag>+<BIN> for <unk>) for its word's frequency bin BIN;
# and OUT/classes/*.txt, the class files of pos_token_classes (each name after --prefix):
#   - NAME.txt for every POS class file given: the tokens tagged in context with its tags (known words),
#   - NAME+unk.txt for the classes of --with-unk: the same with the <unk> tokens tagged so,
#   - NAME-freq_BIN.txt for the classes of --by-frequency and every bin: the class's known tokens of that bin;
#   - freq_BIN.txt for the bins of --bins: every known token of that bin, whatever its tag;
#   - LARGER-as-SMALLER-D.txt for every pair of --size-matched A:B and draw D = 1..--draws: a seeded
#     random subset of the larger class's tokens (by token count in TEXT) with as many tokens as
#     the smaller class has, so that the two compare at one size; its tokens carry the extra tag
#     SIZE-D:LARGER-as-SMALLER.
# Classes are disjoint within each family (one tag per token), unlike the type-level mapping's.
import argparse
import os
import sys

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aux_scripts.measures import analysis  # noqa: E402
from tf_scripts import formats  # noqa: E402
from tf_scripts.errors import UserError, run_cli  # noqa: E402

PROG = "sg-token-classes"
UNK = "<unk>"
EOS = "<eos>"
UNK_PREFIX = "UNK_"
FREQ_PREFIX = "FREQ_"
# sg-reproduce's --prefix: its classes in context share one pass with the type-level classes of the same names
CONTEXT_PREFIX = "ctx_"


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


def members(name, pos_classes, fields):
    """Token indices (over all lines' fields, <eos> included) of a POS class or a frequency bin freq_BIN, known words only."""
    out = []
    for i, field in enumerate(fields):
        tags = field.split("|")
        own = tags[0]
        if name in pos_classes:
            hit = own in pos_classes[name]
        else:
            hit = any(t.endswith("+" + FREQ_PREFIX + name[len("freq_"):].upper()) for t in tags[1:]) \
                and not own.startswith(UNK_PREFIX)
        if hit:
            out.append(i)
    return out


def size_matched(fields, pos_classes, pairs, draws, seed):
    """Add SIZE tags to fields (in place); returns {class file name: [tag]} of the subsampled classes."""
    rng = np.random.default_rng(seed)
    files = {}
    for a, b in pairs:
        ia, ib = members(a, pos_classes, fields), members(b, pos_classes, fields)
        (large, big), (small, few) = sorted([(a, ia), (b, ib)], key=lambda x: -len(x[1]))
        for d in range(1, draws + 1):
            tag = f"SIZE-{d}:{large}-as-{small}"
            for i in rng.choice(big, size=len(few), replace=False):
                fields[i] += "|" + tag
            files[f"{large}-as-{small}-{d}.txt"] = [tag]
    return files


def _main(argv):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0] + " Writes OUT/NAME.tags (the "
                                     "pos_tokens file) and OUT/classes/*.txt (the pos_token_classes files).")
    parser.add_argument("text", metavar="TEXT", help="the LM text that was tagged (e.g. valid.txt)")
    parser.add_argument("tags", metavar="TAGS", help="its tags (sg-pos-tagger's NAME.tags)")
    parser.add_argument("pos_mapping", metavar="MAPPING", help="a POS mapping with the FREQ_* bins (sg-freq-classes)")
    parser.add_argument("--classes", nargs="+", required=True, metavar="CLASS.txt", help="POS class files")
    parser.add_argument("--with-unk", nargs="*", default=[], metavar="NAME",
                        help="classes that also get a NAME+unk class with the <unk> tokens")
    parser.add_argument("--by-frequency", nargs="*", default=[], metavar="NAME",
                        help="classes that also get one NAME-freq_BIN class per frequency bin")
    parser.add_argument("--bins", nargs="*", default=[], metavar="freq_BIN",
                        help="frequency bins that also get a class of all their known tokens (e.g. freq_1-9; "
                             "rarest and commonest name the first and last bin)")
    parser.add_argument("--size-matched", nargs="*", default=[], metavar="A:B",
                        help="pairs of classes (POS class names or --bins) whose larger one is also subsampled to "
                             "the smaller one's token count")
    parser.add_argument("--draws", type=int, default=2, help="random subsets per --size-matched pair (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsets (default 0)")
    parser.add_argument("--prefix", default="", metavar="P",
                        help="begin every class file's name with P, so that these classes can share a pass "
                             f"(pos_token_classes) with type-level classes of the same names (sg-reproduce: "
                             f"{CONTEXT_PREFIX}; default: none)")
    parser.add_argument("--out", required=True, metavar="DIR")
    args = parser.parse_args(argv)
    pairs = []
    for pair in args.size_matched:
        if pair.count(":") != 1:
            raise UserError(f"--size-matched takes A:B pairs, got {pair!r}")
        pairs.append(tuple(pair.split(":")))
    if args.draws < 1:
        raise UserError(f"--draws must be >= 1, got {args.draws}")
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
    # the aliases rarest and commonest: the first and last bin (their names depend on the data)
    alias = {"rarest": bin_tags[0], "commonest": bin_tags[-1]} if bin_tags else {}
    alias = {k: "freq_" + v[len(FREQ_PREFIX):].lower() for k, v in alias.items()}
    args.bins = [alias.get(b, b) for b in args.bins]
    pairs = [tuple(alias.get(x, x) for x in pair) for pair in pairs]
    for name in [x for pair in pairs for x in pair]:
        if name not in pos_classes and name not in args.bins:
            raise UserError(f"--size-matched class {name!r} is not one of --classes or --bins")
    for b in args.bins:
        if FREQ_PREFIX + b[len("freq_"):].upper() not in bin_tags or not b.startswith("freq_"):
            raise UserError(f"--bins {b}: not a bin of {args.pos_mapping} ({', '.join(t.lower() for t in bin_tags)})")
    fields, lengths = [], []
    for lineno, (line, tags) in enumerate(zip(text, tag_lines), start=1):
        words, tags = line.split(), tags.split()
        if len(tags) != len(words) + 1:
            raise UserError(f"{args.tags} line {lineno}: {len(tags)} tags for {len(words)} words and <eos>")
        fields += token_fields(words, tags, bins)
        lengths.append(len(tags))
    files = class_files(pos_classes, set(args.with_unk), set(args.by_frequency), bin_tags)
    seen = sorted({f.split("|")[0] for f in fields} - {EOS})
    for b in args.bins:
        files[f"{b}.txt"] = [f"{t}+{FREQ_PREFIX}{b[len('freq_'):].upper()}" for t in seen if not t.startswith(UNK_PREFIX)]
    files.update(size_matched(fields, pos_classes, pairs, args.draws, args.seed))
    out_lines, start = [], 0
    for n in lengths:
        out_lines.append(" ".join(fields[start:start + n]) + "\n")
        start += n
    os.makedirs(os.path.join(args.out, "classes"), exist_ok=True)
    name = os.path.basename(args.tags)
    analysis.atomic_write_text(os.path.join(args.out, name), "".join(out_lines))
    for file, tags in files.items():
        analysis.atomic_write_text(os.path.join(args.out, "classes", args.prefix + file), "".join(t + "\n" for t in tags))
    print(f"{os.path.join(args.out, name)}: {len(out_lines)} lines; {len(files)} class files in "
          f"{os.path.join(args.out, 'classes')}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())

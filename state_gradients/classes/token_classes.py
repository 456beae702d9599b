"""The token tags and class files of a gradient pass with classes in context, and frequency-matched ones."""
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
#     SIZE-D:LARGER-as-SMALLER;
#   - BIN+types-G.txt for every bin of --type-weighted and group G = 1..--type-groups: the bin's word
#     types (those with a known token in the first --measured-tokens tokens of TEXT) are shuffled
#     (seeded) and dealt into the groups; each known token of a type of group G carries the extra tag
#     TYPES:BIN+types-G*W, W = 1 / the type's count there, so that every type weighs the same in the
#     group's average (the pass reads '*W' as the token's weight). Every bin gets the same number of
#     groups (at most the smallest bin's number of types). sg-intervals combines the groups into
#     BIN+types: the bin with its types weighted equally, its intervals resampling the groups.
#   - NAME-freq_BIN.txt and BIN+types-G.txt are written only for classes with tokens in TEXT.
# Classes are disjoint within each family (one tag per token), unlike the type-level mapping's.
import os

import numpy as np

from state_gradients.core import formats
from state_gradients.core.errors import UserError
from state_gradients.measures import analysis

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


def type_weighted(fields, words, bins, groups, measured, seed):
    """Add the TYPES tags (module comment) to fields (in place) for the bins (freq_BIN names); returns
    ({class file name: [tag]}, {bin: number of types}).

    words [n] the word of every field (None for <eos>); measured: the number of leading fields whose types and
    counts define the weights (None: all)."""
    rng = np.random.default_rng(seed)
    files, n_types = {}, {}
    limit = len(fields) if measured is None else min(measured, len(fields))
    found = {}
    for name in bins:
        tokens = [i for i in members(name, {}, fields) if i < limit]
        counts = {}
        for i in tokens:
            counts[words[i]] = counts.get(words[i], 0) + 1
        if counts:
            found[name] = (tokens, counts)
    # one number of groups for every bin, so that a statistic of two bins (a difference) pairs their groups in one
    # jackknife: the groups of two bins are independent, so the pairing is arbitrary and the variances add
    n_groups = min([groups] + [len(counts) for _, counts in found.values()])
    for name, (tokens, counts) in found.items():
        types = sorted(counts)
        order = rng.permutation(len(types))
        group_of = {types[t]: 1 + rank % n_groups for rank, t in enumerate(order)}
        for i in tokens:
            fields[i] += f"|TYPES:{name}+types-{group_of[words[i]]}*{1.0 / counts[words[i]]!r}"
        for g in range(1, n_groups + 1):
            files[f"{name}+types-{g}.txt"] = [f"TYPES:{name}+types-{g}"]
        n_types[name] = len(types)
    return files, n_types


def write_token_classes(text, tags, pos_mapping, classes, out, with_unk=(), by_frequency=(), bins=(),
                        size_matched_pairs=(), draws=2, seed=0, prefix="", type_weighted_bins=(), type_groups=7,
                        measured_tokens=None):
    """Write OUT/NAME.tags and OUT/classes/*.txt (see above); returns (tags file, its lines, class files written).

    text, tags, pos_mapping: paths; classes: POS class file paths; bins, type_weighted_bins: freq_BIN names (or
    rarest, commonest); size_matched_pairs: (A, B) class names; type_groups: groups per type-weighted bin;
    measured_tokens: the tokens of TEXT (from its start, <eos> included) a pass measures, None for all;
    UserError for input that does not fit.
    """
    if draws < 1:
        raise UserError(f"--draws must be >= 1, got {draws}")
    if type_groups < 2:
        raise UserError(f"--type-groups must be >= 2 (the intervals resample the groups), got {type_groups}")
    if measured_tokens is not None and measured_tokens < 1:
        raise UserError(f"--measured-tokens must be >= 1, got {measured_tokens}")
    pos_classes = {formats.class_name(p): formats.read_pos_class(p) for p in classes}
    for name in list(with_unk) + list(by_frequency):
        if name not in pos_classes:
            raise UserError(f"class {name!r} is not one of --classes ({', '.join(pos_classes)})")
    word_bin = word_bins(formats.read_pos_mapping(pos_mapping))
    bin_tags = sorted(set(word_bin.values()), key=lambda t: int(t[len(FREQ_PREFIX):].split("-")[0].rstrip("+")))
    if by_frequency and not bin_tags:
        raise UserError(f"{pos_mapping} has no FREQ_* tags: run sg-freq-classes first")
    text_lines = analysis.read_lines(text, "text file")
    tag_lines = analysis.read_lines(tags, "tags file")
    if len(text_lines) != len(tag_lines):
        raise UserError(f"{tags} has {len(tag_lines)} lines but {text} has {len(text_lines)}")
    # the aliases rarest and commonest: the first and last bin (their names depend on the data)
    alias = {"rarest": bin_tags[0], "commonest": bin_tags[-1]} if bin_tags else {}
    alias = {k: "freq_" + v[len(FREQ_PREFIX):].lower() for k, v in alias.items()}
    bins = [alias.get(b, b) for b in bins]
    weighted_bins = list(dict.fromkeys(alias.get(b, b) for b in type_weighted_bins))
    pairs = [tuple(alias.get(x, x) for x in pair) for pair in size_matched_pairs]
    for name in [x for pair in pairs for x in pair]:
        if name not in pos_classes and name not in bins:
            raise UserError(f"--size-matched class {name!r} is not one of --classes or --bins")
    for option, names in (("--bins", bins), ("--type-weighted", weighted_bins)):
        for b in names:
            if FREQ_PREFIX + b[len("freq_"):].upper() not in bin_tags or not b.startswith("freq_"):
                raise UserError(f"{option} {b}: not a bin of {pos_mapping} ({', '.join(t.lower() for t in bin_tags)})")
    fields, lengths, words = [], [], []
    for lineno, (line, line_tags) in enumerate(zip(text_lines, tag_lines), start=1):
        line_words, line_tags = line.split(), line_tags.split()
        if len(line_tags) != len(line_words) + 1:
            raise UserError(f"{tags} line {lineno}: {len(line_tags)} tags for {len(line_words)} words and <eos>")
        fields += token_fields(line_words, line_tags, word_bin)
        words += line_words + [None]
        lengths.append(len(line_tags))
    present = {t for f in fields for t in f.split("|")}
    # a by-frequency cell without a token in TEXT would only add an empty class to the pass
    files = {name: tags for name, tags in class_files(pos_classes, set(with_unk), set(by_frequency), bin_tags).items()
             if "-freq_" not in name or present & set(tags)}
    seen = sorted({f.split("|")[0] for f in fields} - {EOS})
    for b in bins:
        files[f"{b}.txt"] = [f"{t}+{FREQ_PREFIX}{b[len('freq_'):].upper()}" for t in seen if not t.startswith(UNK_PREFIX)]
    files.update(size_matched(fields, pos_classes, pairs, draws, seed))
    files.update(type_weighted(fields, words, weighted_bins, type_groups, measured_tokens, seed)[0])
    out_lines, start = [], 0
    for n in lengths:
        out_lines.append(" ".join(fields[start:start + n]) + "\n")
        start += n
    os.makedirs(os.path.join(out, "classes"), exist_ok=True)
    tags_out = os.path.join(out, os.path.basename(tags))
    analysis.atomic_write_text(tags_out, "".join(out_lines))
    for file, class_tags in files.items():
        analysis.atomic_write_text(os.path.join(out, "classes", prefix + file), "".join(t + "\n" for t in class_tags))
    return tags_out, len(out_lines), len(files)

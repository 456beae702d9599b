"""Generate the demo corpus: a synthetic language whose verb agrees with a subject noun 1-8 words back."""
import os
import sys

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402
from state_gradients.measures.analysis import atomic_write_text, write_pos_mapping  # noqa: E402

DEFAULT_OUT = os.path.join("data", "demo")
DEFAULT_SEED = 1

# Lists, not sets: the draw order must not depend on hashing.
DETERMINERS = ["the", "no", "any"]  # number-neutral, so only the noun carries the number
DETERMINER_P = [0.6, 0.2, 0.2]
NOUNS = [  # (singular NN, plural NNS)
    ("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("horse", "horses"),
    ("farmer", "farmers"), ("teacher", "teachers"), ("student", "students"),
    ("doctor", "doctors"), ("child", "children"), ("man", "men"), ("woman", "women"),
    ("girl", "girls"), ("boy", "boys"), ("king", "kings"), ("queen", "queens"),
    ("author", "authors"), ("pilot", "pilots"), ("baker", "bakers"),
    ("neighbor", "neighbors"), ("friend", "friends"),
]
VERBS_INTRANSITIVE = [  # (VBZ, VBP): the sentence ends after the verb
    ("sleeps", "sleep"), ("laughs", "laugh"), ("sings", "sing"), ("waits", "wait"),
    ("smiles", "smile"), ("runs", "run"), ("works", "work"), ("cries", "cry"),
    ("dances", "dance"), ("arrives", "arrive"),
]
VERBS_TRANSITIVE = [  # (VBZ, VBP): always followed by an object, determiner + noun
    ("sees", "see"), ("likes", "like"), ("helps", "help"), ("follows", "follow"),
    ("knows", "know"), ("finds", "find"), ("meets", "meet"), ("loves", "love"),
    ("greets", "greet"), ("ignores", "ignore"),
]
# Fillers: drawn i.i.d., so their identity predicts nothing and the model should forget them.
ADJECTIVES = ["big", "small", "old", "young", "happy", "angry", "tall", "quiet", "lazy",
              "clever", "brave", "tired", "hungry", "gentle", "noisy"]
ADVERBS = ["quickly", "slowly", "often", "rarely", "always", "never", "sometimes", "usually",
           "quietly", "loudly", "really", "suddenly", "finally", "probably", "certainly"]
INTERJECTIONS = ["um", "uh", "oh", "hmm", "well"]
FILLER_KINDS = [ADJECTIVES, ADVERBS, INTERJECTIONS]
FILLER_KIND_P = [0.4, 0.4, 0.2]
# Words with more than one tag (as in the Penn Treebank); all other words have one.
EXTRA_TAGS = {"well": ["RB"]}
# In the model's vocabulary (lm_data adds <unk>; newlines become <eos>) but tagless.
UNTAGGED = ["<eos>", "<unk>"]

CLASSES = [  # (file name, tags): the POS class files of the gradient analysis
    ("nouns.txt", ["NN", "NNS"]),
    ("verbs.txt", ["VBZ", "VBP"]),
    ("adjectives.txt", ["JJ"]),
    ("adverbs.txt", ["RB"]),
    ("determiners.txt", ["DT"]),
]
SPLITS = ["train", "valid", "test"]


def word_tags():
    """Every word of the language -> its tags, first tag = the tag it has in the grammar."""
    tags = {}

    def add(word, tag):
        tags[word] = [tag] + EXTRA_TAGS.get(word, [])

    for word in DETERMINERS:
        add(word, "DT")
    for sing, plur in NOUNS:
        add(sing, "NN")
        add(plur, "NNS")
    for vbz, vbp in VERBS_INTRANSITIVE + VERBS_TRANSITIVE:
        add(vbz, "VBZ")
        add(vbp, "VBP")
    for kind, tag in zip(FILLER_KINDS, ["JJ", "RB", "UH"]):
        for word in kind:
            add(word, tag)
    return tags


def filler_count_probabilities(min_fillers, max_fillers):
    """P(n fillers) for n = min..max, falling linearly: P(n) proportional to max_fillers + 1 - n.

    Short gaps are the commonest because they let a small LSTM discover the agreement sooner
    (a uniform count took about 1.5 times as many epochs in our runs); long gaps still occur.
    """
    weights = np.arange(max_fillers + 1 - min_fillers, 0, -1, dtype=np.float64)
    return weights / weights.sum()


def make_sentence(rng, min_fillers, max_fillers):
    """One sentence as a list of words: DT N filler{min..max} V [DT N]."""
    plural = int(rng.integers(2))
    words = [DETERMINERS[rng.choice(len(DETERMINERS), p=DETERMINER_P)],
             NOUNS[rng.integers(len(NOUNS))][plural]]
    probs = filler_count_probabilities(min_fillers, max_fillers)
    for _ in range(min_fillers + int(rng.choice(len(probs), p=probs))):
        kind = FILLER_KINDS[rng.choice(len(FILLER_KINDS), p=FILLER_KIND_P)]
        words.append(kind[rng.integers(len(kind))])
    transitive = int(rng.integers(2))
    verbs = VERBS_TRANSITIVE if transitive else VERBS_INTRANSITIVE
    words.append(verbs[rng.integers(len(verbs))][plural])
    if transitive:
        words.append(DETERMINERS[rng.choice(len(DETERMINERS), p=DETERMINER_P)])
        words.append(NOUNS[rng.integers(len(NOUNS))][int(rng.integers(2))])
    return words


def make_split(seed, split, n_sentences, min_fillers, max_fillers):
    """The sentences of one split; each split has its own stream, so sizes do not interact."""
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    return [make_sentence(rng, min_fillers, max_fillers) for _ in range(n_sentences)]


def pos_mapping():
    """word_tags() plus the tagless tokens, sorted by word (the file's line order)."""
    mapping = {**word_tags(), **{w: [] for w in UNTAGGED}}
    return {w: mapping[w] for w in sorted(mapping)}


def readme_text(args, sentences):
    """README.md of the generated folder: grammar, files, sizes and how to regenerate."""
    counts = {s: sum(len(x) + 1 for x in sentences[s]) for s in SPLITS}
    cmd = (f"python data/make_demo.py --seed {args.seed} --train-sentences {args.train_sentences}"
           f" --valid-sentences {args.valid_sentences} --test-sentences {args.test_sentences}"
           f" --min-fillers {args.min_fillers} --max-fillers {args.max_fillers}")
    probs = filler_count_probabilities(args.min_fillers, args.max_fillers)
    gaps = ", ".join(f"{args.min_fillers + i}: {100 * p:.1f}%" for i, p in enumerate(probs))
    sizes = "\n".join(f"| {s}.txt | {len(sentences[s])} | {counts[s]} |" for s in SPLITS)
    classes = "\n".join(f"  - `classes/{name}`: {' '.join(t)}" for name, t in CLASSES)
    return f"""# Demo corpus: a synthetic language with a planted long-distance memory

Written by `data/make_demo.py`; the same arguments give byte-identical files. The files are
committed (a few hundred kB), so the demo needs no generation step. Regenerate them with

    {cmd} --out data/demo

(the defaults; tests/unit/measures/test_make_demo.py checks that the committed files equal this output).

## Grammar

One sentence per line, lower case, no punctuation (the LM reader turns each newline into `<eos>`):

    DT  N  F{{{args.min_fillers}..{args.max_fillers}}}  V  [DT N]

- `DT`: determiner ({', '.join(DETERMINERS)}; probabilities {', '.join(map(str, DETERMINER_P))}). Each fits
  both numbers, so the determiner says nothing about the verb.
- `N`: subject noun, singular (NN) or plural (NNS) with probability 1/2, one of {len(NOUNS)} lemmas
  (a few irregular: child/children, man/men, woman/women).
- `F`: {args.min_fillers} to {args.max_fillers} fillers, each drawn independently: an adjective JJ (p {FILLER_KIND_P[0]},
  {len(ADJECTIVES)} words), an adverb RB (p {FILLER_KIND_P[1]}, {len(ADVERBS)} words) or an interjection UH (p {FILLER_KIND_P[2]},
  {len(INTERJECTIONS)} words). Their identity predicts nothing later, so a
  model should forget them. The number of fillers n falls linearly, P(n) proportional to
  {args.max_fillers + 1} - n ({gaps}):
  the short gaps let a small LSTM discover the agreement sooner (a uniform count took about
  1.5 times as many epochs), the long ones test the memory.
- `V`: verb, VBZ after a singular subject and VBP after a plural one, lemma uniform among
  {len(VERBS_INTRANSITIVE)} intransitive and {len(VERBS_TRANSITIVE)} transitive verbs. **This agreement is the planted memory**:
  to predict the verb form, a model must carry the subject's number across the fillers.
- `[DT N]`: after a transitive verb an object (determiner + noun of random number), after an
  intransitive one nothing. The verb thus predicts the next one to three words (a short memory).

Example: `the dogs quickly old um bark` / `no teacher tired sees the cats`.

## Files

| file | sentences | tokens (words + `<eos>`) |
|---|---|---|
{sizes}

- `pos_mapping.txt`: every word of the language with its tags in the format of docs/spec.md §7
  (`dogs ['NNS']`), sorted. Only `well` has two tags (`['RB', 'UH']`, as in the Penn Treebank).
  `<eos>` and `<unk>` are in the model's vocabulary but have no tag (`<eos> not in list`), so no
  class average counts them and no script reports them as missing.
- `classes/`: POS class files (one tag per line) for the config key `pos_classes`:
{classes}

  Interjections (UH) are in no class file.

Used by `config/demo.config` (training) and `config/demo_grad.config` (state gradients of all
time steps with per-class averages).
"""


def _check_args(args):
    for name in ("train_sentences", "valid_sentences", "test_sentences"):
        value = getattr(args, name)
        if value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not 1 <= args.min_fillers <= args.max_fillers:
        raise UserError(f"need 1 <= --min-fillers <= --max-fillers, got {args.min_fillers} and "
                        f"{args.max_fillers}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out} exists and is not a directory")


def generate(args):
    """Write every file of the demo corpus into args.out."""
    _check_args(args)
    sentences = {s: make_split(args.seed, s, getattr(args, f"{s}_sentences"),
                               args.min_fillers, args.max_fillers) for s in SPLITS}
    os.makedirs(os.path.join(args.out, "classes"), exist_ok=True)
    for split in SPLITS:
        atomic_write_text(os.path.join(args.out, f"{split}.txt"),
                          "".join(" ".join(words) + "\n" for words in sentences[split]))
    write_pos_mapping(pos_mapping(), os.path.join(args.out, "pos_mapping.txt"))
    for name, tags in CLASSES:
        atomic_write_text(os.path.join(args.out, "classes", name), "".join(t + "\n" for t in tags))
    atomic_write_text(os.path.join(args.out, "README.md"), readme_text(args, sentences))
    return sentences


def build_parser():
    parser = make_parser(
        prog="make_demo.py",
        description="Write the demo corpus (train/valid/test.txt, pos_mapping.txt, classes/, "
                    "README.md): subject-verb number agreement across 1-8 random fillers.")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"output directory, created if needed (default {DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"random seed; same seed, same bytes (default {DEFAULT_SEED})")
    parser.add_argument("--train-sentences", type=int, default=7000,
                        help="sentences in train.txt (default 7000, about 58k tokens)")
    parser.add_argument("--valid-sentences", type=int, default=600,
                        help="sentences in valid.txt (default 600, about 5k tokens)")
    parser.add_argument("--test-sentences", type=int, default=600,
                        help="sentences in test.txt (default 600, about 5k tokens)")
    parser.add_argument("--min-fillers", type=int, default=1,
                        help="fewest fillers between subject and verb (default 1)")
    parser.add_argument("--max-fillers", type=int, default=8,
                        help="most fillers between subject and verb (default 8)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    sentences = generate(args)
    for split in SPLITS:
        n_tokens = sum(len(x) + 1 for x in sentences[split])
        print(f"{os.path.join(args.out, split + '.txt')}: {len(sentences[split])} sentences, "
              f"{n_tokens} tokens")
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv, "make_demo.py")


if __name__ == "__main__":
    sys.exit(main())

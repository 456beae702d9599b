"""The tagger of sg-pos-tagger: train a POS tagger on the normalised tagged corpora, test it on held-out documents, tag LM text in context."""
# Shape letters: none (lists of sentences).
#
# Training: CoNLL-2000's train section (WSJ 15-18) and the treebank sample (WSJ 00-01), both
# normalised as the PTB LM text is (state_gradients/classes/tagged_corpora.py), with NLTK's averaged
# perceptron trained from scratch (seeded; nothing is downloaded). Held out: CoNLL-2000's test
# section (WSJ 20), whole documents the tagger never saw; the PTB validation text is WSJ 21-22.
#
# Writes (--out DIR):
#   tagger.json     accuracy on the held-out sentences with its Wilson 95% interval, the
#                   majority-tag baseline, per-tag precision, recall and support, and the
#                   confusion counts among the tags of the class files (--classes)
#   NAME.tags       for every --tag FILE (NAME its base name without .txt): one line per line
#                   of FILE, one field per word and a last field <eos> for the end of the
#                   sentence, fields separated by single spaces (the format of the pos_tokens key)
import collections
import json
import os
import random

from state_gradients.classes import tagged_corpora
from state_gradients.core import formats
from state_gradients.core.errors import UserError
from state_gradients.measures import analysis, uncertainty

EOS = "<eos>"
ITERATIONS = 5
CONLL_TRAIN, CONLL_TEST = os.path.join("conll2000", "train.txt"), os.path.join("conll2000", "test.txt")
TREEBANK = os.path.join("treebank_sample", "wsj_0001-0199.pos")


def training_sentences(pos_data, vocab):
    """(train, held-out) lists of normalised [(word, tag)] sentences from a get_pos_data.py folder."""
    for name in (CONLL_TRAIN, CONLL_TEST, TREEBANK):
        if not os.path.isfile(os.path.join(pos_data, name)):
            raise UserError(f"{os.path.join(pos_data, name)} not found: fill {pos_data} with python data/get_pos_data.py")
    norm = lambda sentences: [s for s in (tagged_corpora.normalise(t, vocab) for t in sentences) if s]  # noqa: E731
    train = norm(tagged_corpora.read_conll_sentences(os.path.join(pos_data, CONLL_TRAIN)))
    train += norm(tagged_corpora.split_sentences(tagged_corpora.read_treebank_tokens(os.path.join(pos_data, TREEBANK))))
    held_out = norm(tagged_corpora.read_conll_sentences(os.path.join(pos_data, CONLL_TEST)))
    return train, held_out


def train_tagger(sentences, seed=0, iterations=ITERATIONS):
    """NLTK's averaged perceptron trained from scratch on [(word, tag)] sentences; the shuffles are seeded."""
    from nltk.tag.perceptron import PerceptronTagger

    state = random.getstate()
    random.seed(seed)            # nltk shuffles the sentences with the random module between iterations
    try:
        tagger = PerceptronTagger(load=False)
        tagger.train([list(s) for s in sentences], nr_iter=iterations)
    finally:
        random.setstate(state)
    return tagger


def evaluate(tagger, sentences, class_tags):
    """Accuracy (Wilson interval), majority baseline, per-tag precision/recall, confusion among class_tags."""
    from sklearn.metrics import precision_recall_fscore_support

    gold = [t for s in sentences for _, t in s]
    guess = [t for s in sentences for _, t in tagger.tag([w for w, _ in s])]
    right = sum(g == p for g, p in zip(gold, guess))
    majority, majority_count = collections.Counter(gold).most_common(1)[0]
    tags = sorted(set(gold))
    precision, recall, _, support = precision_recall_fscore_support(gold, guess, labels=tags, zero_division=0)
    confusion = collections.Counter((g, p) for g, p in zip(gold, guess) if g in class_tags or p in class_tags)
    return {
        "held_out_sentences": len(sentences), "held_out_tokens": len(gold), "accuracy": right / len(gold),
        "accuracy_wilson95": uncertainty.wilson(right, len(gold)),
        "majority_tag": majority, "majority_baseline": majority_count / len(gold),
        "per_tag": {t: {"precision": float(p), "recall": float(r), "support": int(n)}
                    for t, p, r, n in zip(tags, precision, recall, support)},
        "confusion": [{"gold": g, "tagged": p, "count": n} for (g, p), n in sorted(confusion.items())],
    }


def tag_lines(tagger, path):
    """Tag lines of an LM text file: [[tag per word] + [EOS]] in line order (an empty line gets only EOS)."""
    out = []
    for line in analysis.read_lines(path, "text file"):
        words = line.split()
        out.append([t for _, t in tagger.tag(words)] + [EOS] if words else [EOS])
    return out


def train_and_tag(pos_data, vocab_text, tag_files, class_files, out, seed=0):
    """Train and test the tagger, write OUT/tagger.json and OUT/NAME.tags for every tag file; returns tagger.json's dict."""
    vocab = {w for line in analysis.read_lines(vocab_text, "vocabulary text") for w in line.split()}
    class_tags = set()
    for path in class_files:
        class_tags |= formats.read_pos_class(path)
    train, held_out = training_sentences(pos_data, vocab)
    tagger = train_tagger(train, seed)
    report = {"train_sentences": len(train), "train_tokens": sum(len(s) for s in train), "seed": seed,
              "iterations": ITERATIONS, **evaluate(tagger, held_out, class_tags)}
    tagged = {path: tag_lines(tagger, path) for path in tag_files}
    os.makedirs(out, exist_ok=True)
    for path, lines in tagged.items():
        name = os.path.splitext(os.path.basename(path))[0] + ".tags"
        analysis.atomic_write_text(os.path.join(out, name), "".join(" ".join(tags) + "\n" for tags in lines))
    # written last: a folder with tagger.json holds every tags file
    analysis.atomic_write_text(os.path.join(out, "tagger.json"), json.dumps(report, indent=1) + "\n")
    return report

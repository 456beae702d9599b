"""The classifier of pos_classifier_sklearn.py: predict POS tags (or classes of tags) from word embeddings with grid-searched logistic regression."""
# Shape letters: V vocabulary (rows of the embedding matrix), E embedding size, X examples.
import collections
import dataclasses
import io
import os
import warnings

import joblib
import numpy as np

from state_gradients.core import fileio, lm_data, results
from state_gradients.core.errors import UserError
from state_gradients.measures import analysis
from state_gradients.plots import figure

# The original's grid without `multi_class` (removed from scikit-learn; the multinomial loss is
# now always used) and with l1_ratio=0 in place of the deprecated penalty='l2' (the same model).
FULL_GRID = {
    "random_state": [2017, 1337],
    "l1_ratio": [0.0],
    "class_weight": ["balanced", None],
    "C": [0.1, 0.4, 0.6, 0.8, 1.0, 1.2, 2.0],
    "solver": ["lbfgs", "sag", "newton-cg"],
}
SMALL_GRID = {"C": [0.1, 1.0], "solver": ["lbfgs"]}
GRIDS = {"full": FULL_GRID, "small": SMALL_GRID}
CV_FOLDS = 3
TOKEN_HEADER = "token"


# --------------------------------------------------------------------------------------------
# --pos_classes files
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class PosClasses:
    """The labels to predict: label -> the tags (or, when by_word, the words) that belong to it."""
    members: dict
    by_word: bool = False

    def label_of(self):
        """Inverse map: tag (or word) -> label."""
        return {item: label for label, items in self.members.items() for item in items}


def read_pos_classes(path):
    """Read a --pos_classes file in any of the original's three formats.

    - a plain list of tags, one per line: each tag is its own label, other tags are dropped;
    - lines `class<TAB>tag tag ...`: every tag of a line gets the class as its label;
    - a first line `token`, then lines `class<TAB>word word ...`: the listed words get the class.
    UserError names the file and line of a malformed line, a repeated class, or a tag (word) in
    two classes.
    """
    lines = [(n, line.split()) for n, line in
             enumerate(analysis.read_lines(path, "POS classes file"), start=1) if line.strip()]
    if not lines:
        raise UserError(f"POS classes file {path} is empty")
    by_word = lines[0][1] == [TOKEN_HEADER]
    if not by_word and len(lines[0][1]) == 1:
        return PosClasses({tag: {tag} for tag in sorted(analysis.read_pos_class(path))})
    what = "word" if by_word else "tag"
    members, where = {}, {}
    for lineno, fields in lines[1:] if by_word else lines:
        if len(fields) < 2:
            raise UserError(f"{path} line {lineno}: expected `class<TAB>{what} {what} ...`, got {fields}")
        label, items = fields[0], fields[1:]
        if label in members:
            raise UserError(f"{path} line {lineno}: class {label!r} already defined on line {where[label]}")
        for item in items:
            if item in where:
                raise UserError(f"{path} line {lineno}: {what} {item!r} is already in a class on line {where[item]}")
            where[item] = lineno
        members[label] = set(items)
        where[label] = lineno
    if not members:
        raise UserError(f"POS classes file {path} defines no classes after its `{TOKEN_HEADER}` line")
    return PosClasses(members, by_word)


# --------------------------------------------------------------------------------------------
# Examples: (word, label) pairs
# --------------------------------------------------------------------------------------------

def collapsed_pairs(mapping, word_to_id):
    """(word, tag) for every tag of every word of the vocabulary (one example per tag); skipped word count."""
    pairs = [(word, tag) for word, tags in mapping.items() if word in word_to_id for tag in sorted(tags)]
    return pairs, sum(1 for word in mapping if word not in word_to_id)


def read_running_text(path, word_to_id):
    """(word, tag) per token of a tagged running text: `word TAG [more columns]` lines, blanks skipped."""
    pairs = []
    for lineno, line in enumerate(analysis.read_lines(path, "running text POS file"), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2 or "|" in fields[1] or fields[1].startswith("["):
            raise UserError(f"{path} line {lineno}: expected `word TAG` with one tag (running text), "
                            f"got {line.strip()!r}")
        if fields[0] not in word_to_id:
            raise UserError(f"{path} line {lineno}: word {fields[0]!r} is not in the dictionary")
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise UserError(f"running text POS file {path} holds no tokens")
    return pairs


def assign_labels(pairs, classes):
    """(word, label) pairs: the tag itself without classes, else the class of the tag (or word); others dropped."""
    if classes is None:
        return list(pairs)
    label_of = classes.label_of()
    key = 0 if classes.by_word else 1
    return [(pair[0], label_of[pair[key]]) for pair in pairs if pair[key] in label_of]


def apply_cutoff(examples, cutoff):
    """Drop the examples whose label has fewer than cutoff examples; (examples, dropped labels)."""
    counts = collections.Counter(label for _, label in examples)
    dropped = sorted(label for label, count in counts.items() if count < cutoff)
    return [ex for ex in examples if counts[ex[1]] >= cutoff], dropped


def check_labels(examples):
    """UserError unless there are >= 2 labels and every label has >= 2 examples."""
    counts = collections.Counter(label for _, label in examples)
    if len(counts) < 2:
        raise UserError(f"need examples of at least 2 labels to train a classifier, found {sorted(counts)}")
    rare = sorted(label for label, count in counts.items() if count < 2)
    if rare:
        raise UserError(f"label(s) {', '.join(rare)} have only 1 example, too few for the train/valid/test "
                        "split (drop them with --freq_cutoff 2)")
    return counts


def split_indices(n, seed):
    """Seeded shuffle of range(n), cut 80/10/10 into (train, valid, test) index arrays."""
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_valid = n * 80 // 100, n * 10 // 100
    return order[:n_train], order[n_train:n_train + n_valid], order[n_train + n_valid:]


@dataclasses.dataclass
class Dataset:
    """Examples sorted by (word, label): embeddings x [X, E], labels y [X], words [X], and the split."""
    x: np.ndarray
    y: np.ndarray
    words: list
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def make_dataset(examples, emb, word_to_id, seed):
    """Sort the examples by word, look up their embeddings and split them with a seeded shuffle."""
    examples = sorted(examples)
    words = [word for word, _ in examples]
    x = emb[[word_to_id[word] for word in words]]
    y = np.array([label for _, label in examples])
    return Dataset(x, y, words, *split_indices(len(examples), seed))


# --------------------------------------------------------------------------------------------
# Classifier
# --------------------------------------------------------------------------------------------

def _report_warnings(caught, log):
    # One line per distinct warning instead of one per grid point and fold.
    counts = collections.Counter(f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught)
    for message, count in counts.items():
        log(f"warning ({count}x): {message}")


def train(x, y, grid, log=print):
    """Grid search (3-fold CV) over logistic regression hyper-parameters; the fitted GridSearchCV."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    search = GridSearchCV(LogisticRegression(), grid, cv=CV_FOLDS, error_score="raise")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            search.fit(x, y)
        except ValueError as err:
            raise UserError(f"training failed: {str(err).splitlines()[0]} "
                            "(too few examples per label? try --freq_cutoff)") from None
    _report_warnings(caught, log)
    return search


def _dump_bytes(path, obj):
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    fileio.write_bytes(path, buf.getvalue())


def save_search(name, search):
    """NAME.estimator, NAME.params, NAME.results (joblib) and NAME.score (best CV score, text)."""
    _dump_bytes(f"{name}.estimator", search.best_estimator_)
    _dump_bytes(f"{name}.params", search.best_params_)
    _dump_bytes(f"{name}.results", search.cv_results_)
    analysis.atomic_write_text(f"{name}.score", f"{search.best_score_}\n")


def load_joblib(path, what):
    """joblib.load with UserError for a missing or unreadable file."""
    if not os.path.isfile(path):
        raise UserError(f"{what} {path} does not exist (train without --no_train first)")
    try:
        return joblib.load(path)
    except Exception as err:  # joblib/pickle raise many types for a damaged file
        raise UserError(f"cannot read {what} {path}: {err}") from None


def load_estimator(name, emb_size):
    """The estimator saved as NAME.estimator; UserError when it does not fit E-dimensional embeddings."""
    estimator = load_joblib(f"{name}.estimator", "estimator")
    if not hasattr(estimator, "predict") or not hasattr(estimator, "classes_"):
        raise UserError(f"{name}.estimator does not hold a trained classifier")
    if getattr(estimator, "n_features_in_", emb_size) != emb_size:
        raise UserError(f"{name}.estimator was trained on {estimator.n_features_in_}-dimensional embeddings, "
                        f"these have {emb_size}")
    return estimator


def print_grid_results(name, log=print):
    """Print NAME.results as the original did: each cv_results_ key followed by its values."""
    for key, values in load_joblib(f"{name}.results", "grid search results").items():
        log(key, *values)


# --------------------------------------------------------------------------------------------
# Plots and averages
# --------------------------------------------------------------------------------------------

def _save_figure(fig, path, log):
    figure.save_png(fig, path)
    log(f"wrote {path}")


def _colours(n):
    from matplotlib import colormaps
    jet = colormaps["jet"]
    return [jet(i / max(1, n - 1)) for i in range(n)]


def _scatter_plot(points, labels, title, path, log):
    """2-D scatter of points [X, 2] coloured by label (legend above the axes)."""
    names = sorted(set(labels))
    fig = figure.new_figure(8, 8)
    ax = fig.subplots()
    for colour, name in zip(_colours(len(names)), names):
        chosen = labels == name
        ax.scatter(points[chosen, 0], points[chosen, 1], s=10, color=colour, label=name)
    ax.set_title(title)
    ax.legend(bbox_to_anchor=(0.0, 1.06, 1.0, 0.102), loc="lower left", ncol=max(2, len(names) // 8),
              fontsize="x-small", mode="expand", borderaxespad=0.0)
    fig.tight_layout()
    _save_figure(fig, path, log)


def plot_confusion_matrix(estimator, x, y, path, log=print):
    """Row-normalised confusion matrix of the estimator's predictions on (x, y), as an image."""
    from sklearn.metrics import confusion_matrix
    predicted = estimator.predict(x)
    for label in estimator.classes_:
        if label not in predicted:
            log(f"label {label} is never predicted")
    labels = sorted(set(estimator.classes_) | set(y))
    counts = confusion_matrix(y, predicted, labels=labels).astype(float)
    totals = counts.sum(axis=1, keepdims=True)
    matrix = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = max(5.0, 0.35 * len(labels) + 2.0)
    fig = figure.new_figure(side, side)
    ax = fig.subplots()
    image = ax.imshow(matrix, interpolation="nearest", cmap="binary", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=90)
    ax.set_yticks(ticks, labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j] > 0:
                ax.text(j, i, f"{matrix[i, j]:.2f}".lstrip("0"), ha="center", va="center", fontsize="x-small",
                        color="white" if matrix[i, j] > 0.5 else "black")
    ax.set_title("Confusion matrix")
    ax.set_ylabel("True label")
    ax.set_xlabel("Predicted label")
    fig.tight_layout()
    _save_figure(fig, path, log)


def plot_pca(x, y, path, log=print):
    """First two principal components of the embeddings."""
    from sklearn.decomposition import PCA
    if x.shape[0] < 2 or x.shape[1] < 2:
        raise UserError(f"PCA plot needs at least 2 examples of dimension >= 2, got shape {x.shape}")
    _scatter_plot(PCA(n_components=2).fit_transform(x), y, "PCA", path, log)


def plot_tsne(x, y, path, seed, log=print):
    """Two-dimensional t-SNE of the embeddings (perplexity at most 30, less for few examples)."""
    from sklearn.manifold import TSNE
    if x.shape[0] < 5:
        raise UserError(f"t-SNE plot needs at least 5 examples, got {x.shape[0]}")
    perplexity = min(30.0, (x.shape[0] - 1) / 3.0)
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    _scatter_plot(points, y, "t-SNE", path, log)


def plot_lda(x, y, path, log=print):
    """Linear discriminant projection (2 components; 1 for two labels, plotted against the label)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    names = sorted(set(y))
    if len(names) < 2:
        raise UserError("LDA plot needs examples of at least 2 labels")
    components = min(2, len(names) - 1, x.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # collinear embeddings only make LDA warn
        points = LinearDiscriminantAnalysis(n_components=components).fit(x, y).transform(x)
    if components == 1:
        points = np.column_stack([points[:, 0], [names.index(label) for label in y]])
    _scatter_plot(points, y, "LDA", path, log)


def plot_coef(estimator, path, log=print):
    """The estimator's weights per label against embedding dimension."""
    coef = estimator.coef_
    # A binary model has one weight row, for its second class.
    labels = list(estimator.classes_) if coef.shape[0] == len(estimator.classes_) else [estimator.classes_[-1]]
    fig = figure.new_figure(10, 6)
    ax = fig.subplots()
    for colour, label, row in zip(_colours(len(labels)), labels, coef):
        ax.plot(row, color=colour, label=label)
    ax.set_xlabel("embedding dimension")
    ax.set_ylabel("weight")
    ax.legend(bbox_to_anchor=(0.0, 1.02, 1.0, 0.102), loc="lower left", ncol=max(2, len(labels) // 8),
              fontsize="x-small", mode="expand", borderaxespad=0.0)
    fig.tight_layout()
    _save_figure(fig, path, log)


def average_embeddings(x, y):
    """label -> mean embedding over all examples with that label (labels in sorted order)."""
    return {label: x[y == label].mean(axis=0) for label in sorted(set(y))}


def load_examples(args, word_to_id, log=print):
    """(word, label) examples from POSFILE and --pos_classes, after --freq_cutoff; printed per label."""
    classes = read_pos_classes(args.pos_classes) if args.pos_classes else None
    if classes is not None and classes.by_word:
        unknown = sorted(set(classes.label_of()) - set(word_to_id))
        if unknown:
            raise UserError(f"{args.pos_classes}: word(s) not in the dictionary {args.dict}: {', '.join(unknown[:10])}")
    if args.type_data == "running_text":
        pairs = read_running_text(args.posfile, word_to_id)
    else:
        pairs, skipped = collapsed_pairs(analysis.read_pos_mapping(args.posfile), word_to_id)
        if skipped:
            log(f"{skipped} words of {args.posfile} are not in {args.dict}; skipped")
    examples = assign_labels(pairs, classes)
    if args.type_data == "collapsed":
        # A word whose tags fall into one class is one example of that class, not several copies.
        examples = sorted(set(examples))
    if args.freq_cutoff is not None:
        examples, dropped = apply_cutoff(examples, args.freq_cutoff)
        if dropped:
            log(f"labels with fewer than {args.freq_cutoff} examples dropped: {' '.join(dropped)}")
    counts = check_labels(examples)
    if classes is not None:
        missing = sorted(set(classes.members) - set(counts))
        if missing:
            log(f"no examples for {' '.join(missing)}; skipped")
    for label, count in sorted(counts.items()):
        log(f"{label}\t{count}")
    return examples


def load_embeddings(path, word_to_id, dict_path):
    """The [V, E] embedding matrix; UserError unless it has one row per dictionary word."""
    emb = analysis.load_array(path, "embedding file", ndim=2)
    if emb.shape[0] != len(word_to_id):
        raise UserError(f"embedding file {path} has {emb.shape[0]} rows but dictionary {dict_path} "
                        f"has {len(word_to_id)} words")
    return emb


def run_classifier(args, log=print):
    """pos_classifier_sklearn.py's job; args: its flags as attributes (the argparse Namespace of its
    command line). Writes the NAME.* files, logs the original's lines; returns the --result dict."""
    name = args.name
    outputs = [f"{name}.{ext}" for ext in ("estimator", "params", "results", "score")]
    for out in outputs:
        analysis.check_not_input(out, [args.emb, args.dict, args.posfile, args.pos_classes])
    word_to_id = lm_data.read_vocab_file(args.dict)
    emb = load_embeddings(args.emb, word_to_id, args.dict)
    data = make_dataset(load_examples(args, word_to_id, log), emb, word_to_id, args.seed)
    log(f"{len(data.y)} examples ({args.type_data}): train {len(data.train)}, valid {len(data.valid)}, "
          f"test {len(data.test)}")
    result = {"examples": len(data.y), "train": len(data.train), "valid": len(data.valid), "test": len(data.test),
              "labels": int(len(np.unique(data.y))), "best_cv_score": None, "scores": {}, "baselines": {}}

    if args.no_train:
        estimator = None
    else:
        if len(set(data.y[data.train])) < 2:
            raise UserError("the training part holds examples of only one label; more data is needed")
        log("Train classifier...")
        search = train(data.x[data.train], data.y[data.train], GRIDS[args.grid], log)
        save_search(name, search)
        estimator = search.best_estimator_
        log(f"best parameters: {search.best_params_}")
        log(f"best cross-validation score: {search.best_score_}")
        result["best_cv_score"] = float(search.best_score_)

    def get_estimator():
        return estimator if estimator is not None else load_estimator(name, emb.shape[1])

    if args.grid_search:
        print_grid_results(name, log)
    for skip, part, title in ((args.no_valid, data.valid, "Validation"), (args.no_test, data.test, "Test")):
        if skip:
            continue
        if len(part) == 0:
            raise UserError(f"the {title.lower()} part is empty ({len(data.y)} examples); "
                            f"use --no_{'valid' if title == 'Validation' else 'test'}")
        score = get_estimator().score(data.x[part], data.y[part])
        log(f"{title} score: {score}")
        key = "valid" if title == "Validation" else "test"
        result["scores"][key] = float(score)
        if len(data.train):   # the control for the score: always the commonest training label
            labels, counts = np.unique(data.y[data.train], return_counts=True)
            majority = labels[np.argmax(counts)]
            baseline = float(np.mean(data.y[part] == majority))
            log(f"{title} majority baseline: {baseline} (always {majority}, the commonest training label)")
            result["baselines"][key] = {"accuracy": baseline, "tag": str(majority)}

    if args.result:
        results.write_result(args.result, "sg-pos-classifier", **result)
    chosen = np.arange(len(data.y)) if args.results_dataset == "full" else data.test
    if len(chosen) == 0 and (args.confusion_matrix or args.pca or args.tsne or args.lda):
        raise UserError("the test part is empty; use --results_dataset full")
    x, y = data.x[chosen], data.y[chosen]
    if args.confusion_matrix:
        plot_confusion_matrix(get_estimator(), x, y, f"{name}_confusion_matrix_norm_all.png", log)
    if args.pca:
        plot_pca(x, y, f"{name}_pca.png", log)
    if args.tsne:
        plot_tsne(x, y, f"{name}_tsne.png", args.seed, log)
    if args.lda:
        plot_lda(x, y, f"{name}_lda.png", log)
    if args.plot_coef:
        plot_coef(get_estimator(), f"{name}_coef.png", log)
    if args.avg_emb:
        means = average_embeddings(data.x, data.y)
        for label in means:
            if "/" in label or os.sep in label:
                raise UserError(f"label {label!r} cannot be part of a file name (--avg_emb)")
        for label, mean in means.items():
            analysis.atomic_save_npy(f"{name}_avg_{label}.npy", mean)
        log(f"wrote {name}_avg_{{LABEL}}.npy for {len(means)} labels: {' '.join(means)}")
    return result


"""Classes from tags in context (pos_tokens): the tag file's alignment with the data, and the pass's per-token classes."""
import numpy as np
import pytest

from state_gradients.core import formats, lm_data
from state_gradients.core.configuration import config_from_dict
from state_gradients.core.errors import UserError
from state_gradients.measures import analysis
from state_gradients.passes import gradient_pass

from tests import tiny_corpus
from tests.tiny_corpus import TAGS


def test_token_tags_follow_read_words(tmp_path):
    data, tags = tmp_path / "d.txt", tmp_path / "d.tags"
    data.write_text("a b\n\nc\n")
    tags.write_text("X Y|Z <eos>\n<eos>\nW <eos>\n")
    got = formats.read_token_tags(str(tags), str(data), eos=True)
    assert len(got) == len(lm_data.read_words(str(data))) == 6
    assert got == [{"X"}, {"Y", "Z"}, {"<eos>"}, {"<eos>"}, {"W"}, {"<eos>"}]
    assert formats.read_token_tags(str(tags), str(data), eos=False) == [{"X"}, {"Y", "Z"}, {"W"}]
    data.write_text("a b\n\nc")          # no final newline: no <eos> after c
    assert len(formats.read_token_tags(str(tags), str(data), eos=True)) == len(lm_data.read_words(str(data))) == 5
    tags.write_text("X <eos>\n<eos>\nW <eos>\n")
    with pytest.raises(UserError, match=r"d.tags line 1: 2 tags for the 2 words of .*d.txt line 1 and its <eos> "
                                        r"\(expected 3\)"):
        formats.read_token_tags(str(tags), str(data), eos=True)
    tags.write_text("X Y <eos>\n")
    with pytest.raises(UserError, match="has 1 lines but .* has 3"):
        formats.read_token_tags(str(tags), str(data), eos=True)


@pytest.fixture
def make(tiny_tagged_corpus):
    root = tiny_tagged_corpus(valid_lines=14)
    token_keys = {"pos_mapping": None, "pos_classes": None,
                  "pos_token_classes": f"{root / 'nouns.txt'},{root / 'verbs.txt'}"}
    return (lambda grad_dir, batch_size=1, **keys: tiny_corpus.pass_setup(root, grad_dir, batch_size,
                                                                          **{**token_keys, **keys})), root


def _write_tags(root, tag_of):
    """root/valid.tags with tag_of(word, position in its line) for every word, <eos> last."""
    lines = (root / "data" / "valid.txt").read_text().split("\n")[:-1]
    text = "".join(" ".join([tag_of(w, i) for i, w in enumerate(line.split())] + ["<eos>"]) + "\n" for line in lines)
    (root / "valid.tags").write_text(text)
    return str(root / "valid.tags")


def test_tags_of_the_word_types_give_the_type_level_averages(make):
    build, root = make
    type_keys = {"pos_mapping": str(root / "pos_mapping.txt"), "pos_classes": f"{root / 'nouns.txt'},{root / 'verbs.txt'}"}
    config, corpus, model = build("types", pos_token_classes=None, **type_keys)
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    tags = _write_tags(root, lambda w, i: TAGS.get(w, "CC"))
    config, corpus, model = build("tokens", pos_tokens=tags)
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    # both families in one pass: the token classes under their own names (ctx_ copies of the class files)
    for name in ("nouns", "verbs"):
        (root / f"ctx_{name}.txt").write_text((root / f"{name}.txt").read_text())
    config, corpus, model = build("both", pos_tokens=tags, pos_token_classes=f"{root / 'ctx_nouns.txt'},"
                                  f"{root / 'ctx_verbs.txt'}", **type_keys)
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    for k in range(3):
        for cls in (None, "nouns", "verbs"):
            types = np.load(analysis.average_path(str(root / "types"), k, cls))
            # the same masks in separate passes: the same sums, bit for bit
            np.testing.assert_array_equal(types, np.load(analysis.average_path(str(root / "tokens"), k, cls)))
            # in one pass the class is another row of the same sums; float64 sums of n terms may round in
            # another order (n u64 of the sum of |G|), and the float32 files round once more (u32 each)
            count = int(open(analysis.count_path(str(root / "types"), k, cls)).read())
            for name in [cls] + ([f"ctx_{cls}"] if cls else []):
                both = np.load(analysis.average_path(str(root / "both"), k, name))
                assert int(open(analysis.count_path(str(root / "both"), k, name)).read()) == count
                np.testing.assert_allclose(both, types, rtol=0, atol=2 * 2.0 ** -24 * np.abs(types).max()
                                           + count * 2.0 ** -53 * np.abs(types).max() * count)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_each_token_counts_for_the_classes_of_its_own_tag(make, batch_size):
    # tags that depend on the position in the line, not on the word: a type mapping could not give them
    build, root = make
    tag_of = lambda w, i: "NN" if i % 2 == 0 else ("VBD" if i % 3 == 1 else "JJ")  # noqa: E731
    config, corpus, model = build("grads", batch_size, grad_dump=True, pos_tokens=_write_tags(root, tag_of))
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    # the tag of every token position, from the text itself; window n = batch * B + row holds positions
    # row * (n_ids // B) + batch * T + 0..T-1 (make_windows' layout, written out here)
    tags = []
    for line in (root / "data" / "valid.txt").read_text().split("\n")[:-1]:
        tags += [tag_of(w, i) for i, w in enumerate(line.split())] + ["<eos>"]
    assert len(tags) == len(corpus.valid)
    stream = len(corpus.valid) // batch_size
    inputs, _ = lm_data.make_windows(corpus.valid, batch_size, 6)
    classes = {None: None, "nouns": {"NN", "NNS"}, "verbs": {"VBD"}}
    for k in range(3):
        mats = {c: [] for c in classes}
        for t in range(k, 6):
            for n in range(inputs.shape[0] * batch_size):
                g = np.load(root / "grads" / f"timestep_{t}" / f"delay_{k}" / f"{n}.npy").astype(np.float64)
                position = (n % batch_size) * stream + (n // batch_size) * 6 + t - k
                for c, members in classes.items():
                    if members is None or tags[position] in members:
                        mats[c].append(g)
        for c, found in mats.items():
            assert int(open(analysis.count_path(str(root / "grads"), k, c)).read()) == len(found)
            mean = np.load(analysis.average_path(str(root / "grads"), k, c))
            # float32 files: the dumped matrices and the average are each rounded once (u of the largest entry)
            np.testing.assert_allclose(mean, np.mean(found, axis=0), rtol=0,
                                       atol=2 * 2.0 ** -24 * max(np.abs(f).max() for f in found))


def test_weighted_tokens_give_weighted_averages(make):
    # '*W' weights a token in the classes its tag selects: the average is sum w G / sum w and the count sum w,
    # checked against the dumped matrices; the NN weights depend on the position, so no type mapping could give them
    build, root = make
    weights = (0.5, 0.125, 1.0, 0.375)
    tag_of = lambda w, i: f"NN*{weights[i % 4]!r}" if i % 3 else "VBD"  # noqa: E731
    config, corpus, model = build("grads", 1, grad_dump=True, pos_tokens=_write_tags(root, tag_of))
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    tags, inputs = [], lm_data.make_windows(corpus.valid, 1, 6)[0]
    for line in (root / "data" / "valid.txt").read_text().split("\n")[:-1]:
        tags += [tag_of(w, i) for i, w in enumerate(line.split())] + ["<eos>"]
    fractional = []
    for k in range(3):
        total, weight = 0.0, 0.0
        for t in range(k, 6):
            for n in range(inputs.shape[0]):
                name, w = formats.split_weight(tags[n * 6 + t - k])
                if name == "NN":
                    g = np.load(root / "grads" / f"timestep_{t}" / f"delay_{k}" / f"{n}.npy").astype(np.float64)
                    total, weight = total + w * g, weight + w
        # the weights are dyadic, so their float sum is exact: the count file holds it to the digit
        assert float(open(analysis.count_path(str(root / "grads"), k, "nouns")).read()) == weight
        fractional.append(not weight.is_integer())
        mean = np.load(analysis.average_path(str(root / "grads"), k, "nouns"))
        # float32 files: the dumped matrices and the average are each rounded once (u of the largest entry)
        np.testing.assert_allclose(mean, total / weight, rtol=0, atol=2 * 2.0 ** -24 * np.abs(total / weight).max()
                                   + 2.0 ** -24 * np.abs(total).max() / weight)
    assert any(fractional)      # a count that is not a whole number went through the files


@pytest.mark.parametrize("bad", ["NN*", "NN*0", "NN*-1", "NN*x", "*2", "NN*nan", "NN*inf"])
def test_bad_token_weights_are_refused_with_the_line(tmp_path, bad):
    data, tags = tmp_path / "d.txt", tmp_path / "d.tags"
    data.write_text("a b\nc\n")
    tags.write_text(f"X Y <eos>\n{bad} <eos>\n")
    with pytest.raises(UserError, match=f"d.tags line 2: tag '{bad.replace('*', '[*]')}': the weight after"):
        formats.read_token_tags(str(tags), str(data), eos=True)


def test_pos_tokens_refusals(make):
    build, root = make
    both = f"{root / 'nouns.txt'}"
    with pytest.raises(UserError, match="class name\\(s\\) nouns occur twice in pos_classes and pos_token_classes"):
        config, corpus, model = build("x", pos_tokens=_write_tags(root, lambda w, i: "NN"),
                                      pos_mapping=str(root / "pos_mapping.txt"), pos_classes=both, pos_token_classes=both)
        gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    base = dict(save_path="m", log_dir="l", data_path="d", vocab=False, num_layers=1, size=2, num_steps=2,
                batch_size=1, embedding_size=2, basic_cell="RNN", init_scale=0.1, softmax="full",
                grad_interm="cell", time_step=0, max_delay=1, grad_dir="g", grad_average=True)
    with pytest.raises(UserError, match="pos_token_classes \\(with pos_tokens\\)"):
        config_from_dict({**base, "pos_tokens": "t.tags"}, train=False)
    with pytest.raises(UserError, match="pos_tokens \\(with pos_token_classes\\)"):
        config_from_dict({**base, "pos_token_classes": "c.txt"}, train=False)
    with pytest.raises(UserError, match="pos_token_classes needs grad_average True"):
        config_from_dict({**base, "grad_average": False, "pos_tokens": "t.tags", "pos_token_classes": "c.txt"},
                         train=False)

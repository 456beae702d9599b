"""The tiny tagged corpus of the gradient-pass and interpret_state tests (a helper, not a test module)."""
import numpy as np

from state_gradients.core import formats

# random word salads of a tagged vocabulary, so that every word occurs in every split
WORDS = "the cat sat on a mat and the dog ran to the big red ball while a bird sang".split()
TAGS = {"the": "DT", "a": "DT", "cat": "NN", "mat": "NN", "dog": "NN", "ball": "NN", "bird": "NN",
        "sat": "VBD", "ran": "VBD", "sang": "VBD", "on": "IN", "to": "IN", "while": "IN",
        "big": "JJ", "red": "JJ"}


def write(root, valid_lines=12, class_ext=".txt"):
    """root/data/{train,valid,test}.txt (seeded), root/pos_mapping.txt, class files nouns{ext}, verbs{ext}."""
    rng = np.random.default_rng(5)
    data = root / "data"
    data.mkdir()
    for name, n_lines in [("train", 30), ("valid", valid_lines), ("test", 3)]:
        lines = [" ".join(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(n_lines)]
        (data / f"{name}.txt").write_text("\n".join(lines) + "\n")
    formats.write_pos_mapping({w: {t} for w, t in TAGS.items()}, str(root / "pos_mapping.txt"))
    (root / f"nouns{class_ext}").write_text("NN\nNNS\n")
    (root / f"verbs{class_ext}").write_text("VBD\n")
    return root


def pass_setup(root, grad_dir, batch_size=1, **keys):
    """(config, corpus, model) of a gradient pass over root's tiny corpus: LSTM H 4, E 3, T 6, float64 engine.

    keys override the defaults; a key given as None is left out.
    """
    from state_gradients.core import lm_data
    from state_gradients.core.configuration import config_from_dict
    from state_gradients.models.lm import LanguageModel

    values = dict(save_path=str(root / "model"), log_dir=str(root / "logs"), data_path=str(root / "data"),
                  vocab=False, batch_size=batch_size, num_steps=6, size=4, embedding_size=3, basic_cell="LSTM",
                  num_layers=1, init_scale=0.5, softmax="full", forget_bias=0.2, grad_interm="cell",
                  time_step="all", max_delay=3, grad_dir=str(root / grad_dir), grad_dtype="float64",
                  grad_average=True, pos_mapping=str(root / "pos_mapping.txt"),
                  pos_classes=f"{root / 'nouns.txt'},{root / 'verbs.txt'}")
    values.update(keys)
    config = config_from_dict({k: v for k, v in values.items() if v is not None}, train=False)
    corpus = lm_data.load_corpus(config, need_train=True, need_valid=True, need_test=False)
    return config, corpus, LanguageModel.from_config(config, corpus.vocab_size)

"""The tiny tagged corpus of the gradient-pass and interpret_state tests (a helper, not a test module)."""
import numpy as np

from tf_scripts import formats

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

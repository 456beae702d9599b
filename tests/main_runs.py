"""main.py in process on tiny generated corpora: the corpus, config files and the run helper that several test modules share."""
import re

import numpy as np

from tf_scripts.main import main

WORDS = [f"w{i:02d}" for i in range(40)]   # > 32 words: sampled softmax draws 32
SIZES = {"train": 900, "valid": 240, "test": 120}


def write_corpus(directory, seed=0):
    """A learnable tiny corpus: each word mostly determines the next one."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for name, n in SIZES.items():
        w, lines = 0, []
        for _ in range(n // 10):
            line = []
            for _ in range(10):
                w = (3 * w + int(rng.integers(0, 3))) % len(WORDS)
                line.append(WORDS[w])
            lines.append(" ".join(line))
        (directory / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


# learning_rate 0.5: with 1 the tiny RNN's weights grow until its dynamics are chaotic and float32
# runs drift from the float64 numpy model (float64 TensorFlow still agrees with it)
BASE = dict(vocab="False", basic_cell="LSTM", num_layers=2, embedding_size=6, size=8, num_steps=4,
            init_scale=0.1, learning_rate=0.5, max_grad_norm=5, batch_size=3, forget_bias=0, dropout=0.9,
            max_epoch=1, max_max_epoch=2, lr_decay=0.5, optimizer="sgd", trainer="trainer", softmax="full")


def write_config(tmp_path, name="run", data=None, **keys):
    """Config file tmp_path/NAME.config with models/NAME, logs/ and the tiny corpus (absolute paths)."""
    if data is None:
        data = tmp_path / "data"
        if not data.exists():
            write_corpus(data)
    values = {"save_path": tmp_path / "models" / name, "log_dir": tmp_path / "logs", "data_path": data,
              **BASE, **keys}
    path = tmp_path / f"{name}.config"
    path.write_text("".join(f"{k} {v}\n" for k, v in values.items() if v is not None), encoding="utf-8")
    return path


def run(capsys, *argv):
    """main(argv) in process -> (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def number(text, label):
    """The float printed after `label` (the last such line)."""
    found = re.findall(rf"^{re.escape(label)} (\S+)$", text, re.M)
    assert found, f"no line '{label} X' in output"
    return float(found[-1])

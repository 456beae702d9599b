"""Shared pytest fixtures: the ../shared data sets (fail in CI when missing, skip elsewhere), the tiny tagged corpus."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_MODELS = REPO.parent / "shared" / "models"


def _shared(sub, root=SHARED_DATA):
    path = root / sub
    if not path.exists():
        msg = f"shared {root.name} not found at {path}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " (CI=true: the shared data must be present)")
        pytest.skip(msg)
    return path


@pytest.fixture
def textgenrnn_dir():
    """../shared/models/textgenrnn: a real pretrained Keras (CuDNNLSTM layout) model."""
    return _shared("textgenrnn", SHARED_MODELS)


@pytest.fixture
def ptb_dir():
    """Directory with the PTB train/valid/test.txt files."""
    return _shared("ptb")


@pytest.fixture
def pos_tagged_dir():
    """Directory with conll2000/ and treebank_sample/."""
    return _shared("pos_tagged")


@pytest.fixture
def tiny_tagged_corpus(tmp_path):
    """write(valid_lines, class_ext) -> tmp_path holding the tiny tagged corpus (tests/tiny_corpus.py)."""
    from tests import tiny_corpus

    return lambda valid_lines=12, class_ext=".txt": tiny_corpus.write(tmp_path, valid_lines, class_ext)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """(output folder, ratio, logged lines) of one sg-demo run (run_demo), shared by the demo and tutorial tests."""
    from state_gradients.workflows import demo

    out = tmp_path_factory.mktemp("demo") / "out"
    logged = []
    ratio = demo.run_demo(str(out), long_delay=4, log=logged.append)
    return out, ratio, logged

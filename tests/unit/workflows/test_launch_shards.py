"""sg-launch-shards on a local Dask cluster started by the test: shards as processes, a failed shard retried, the merge."""
import sys

import pytest

from state_gradients.core import lm_data
from state_gradients.core.configuration import config_from_dict
from state_gradients.core.errors import UserError
from state_gradients.files.saved_model import SavedModel
from state_gradients.models.lm import LanguageModel
from state_gradients.workflows import launch_shards
from tests.pass_files import assert_same_pass, pass_files
from tf_scripts import main as main_script

pytest.importorskip("distributed", reason="the cluster extra (pip install -e '.[cluster]') is not installed")

# runs main.py, except that the first attempt of shard FAIL (or every shard: "always") dies, as a lost
# worker process would
WRAPPER = """
import os, sys
marker, fail, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
if fail == "always" or (fail in argv and not os.path.exists(marker)):
    open(marker, "w").close()
    sys.exit(3)
from tf_scripts.main import main
sys.exit(main(argv))
"""


@pytest.fixture
def project(tiny_tagged_corpus):
    root = tiny_tagged_corpus(valid_lines=14)
    values = dict(save_path=str(root / "model"), log_dir=str(root / "logs"), data_path=str(root / "data"),
                  vocab=False, batch_size=2, num_steps=6, size=4, embedding_size=3, basic_cell="GRU", num_layers=1,
                  init_scale=0.5, softmax="full", grad_interm="hidden", time_step="4-5", max_delay=3,
                  grad_dtype="float64", grad_average=True, pos_mapping=str(root / "pos_mapping.txt"),
                  pos_classes=str(root / "nouns.txt"))
    config = config_from_dict({**values, "grad_dir": str(root / "unused")}, train=False)
    corpus = lm_data.load_corpus(config, need_valid=False, need_test=False)
    SavedModel(root / "model").write_weights(LanguageModel.from_config(config, corpus.vocab_size), corpus.word_to_id)

    def write_config(grad_dir):
        path = root / f"{grad_dir}.config"
        path.write_text("".join(f"{k} {v}\n" for k, v in {**values, "grad_dir": str(root / grad_dir)}.items()),
                        encoding="utf-8")
        return path

    (root / "wrapper.py").write_text(WRAPPER, encoding="utf-8")
    return root, write_config


def test_launcher_retries_a_failed_shard_and_merges(project):
    root, write_config = project
    assert main_script.main(["--config", str(write_config("one")), "--notrain", "--notest"]) == 0
    command = f"{sys.executable} {root / 'wrapper.py'} {root / 'failed-once'} 2/3"
    logged = []
    perplexity = launch_shards.launch(str(write_config("cluster")), 3, local_workers=2, retries=1,
                                      main_command=command, log=logged.append)
    assert (root / "failed-once").exists()          # shard 2's first attempt died and was retried
    assert perplexity > 1
    assert_same_pass(pass_files(root / "one"), pass_files(root / "cluster"))
    assert any("Merged 3 shards" in line for line in logged)


def test_launcher_reports_a_shard_that_keeps_failing(project):
    root, write_config = project
    command = f"{sys.executable} {root / 'wrapper.py'} {root / 'marker'} always"
    with pytest.raises(UserError, match=r"3 shard\(s\) failed after 0 retries, nothing merged"):
        launch_shards.launch(str(write_config("broken")), 3, local_workers=2, retries=0, main_command=command,
                             log=lambda s: None)
    assert not (root / "broken" / "grad_progress.json").exists()

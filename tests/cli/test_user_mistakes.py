"""No console command answers a user's mistake or a missing piece of their environment with a traceback."""
# Every command is run in process with each of its required arguments (positional or flag)
# pointing at a folder where it may expect a file, then at a file of garbage where it may expect a
# folder or a data file; numbers get 1 and choices their first value. Whatever the command makes
# of that, it must end with an exit status and, when it fails, one line `PROG: ...` on stderr.
import argparse
import importlib
import sys

import pytest

from tests.commands import MODULES

# sg-demo has no required argument: it is given its --out
ONLY_FILE = {"aux_scripts.demo": ["--out"]}


def _argv(parser, path):
    argv = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if action.option_strings and not action.required:
            continue
        if not action.option_strings and action.nargs in ("?", "*"):
            continue
        value = next(iter(action.choices)) if action.choices else "1" if action.type in (int, float) else path
        count = action.nargs if isinstance(action.nargs, int) else 1
        argv += action.option_strings[:1] + [str(value)] * count
    return argv


def _cases(tmp_path):
    folder = tmp_path / "a_folder"
    folder.mkdir()
    garbage = tmp_path / "a_file.txt"
    garbage.write_text("not what was asked for\tx\n", encoding="utf-8")
    return {"folder": folder, "file": garbage}


# sg-demo with a folder would run the whole demo there: its --out FILE case is the one
CASES = [(name, kind) for name in MODULES for kind in ("folder", "file") if not (name in ONLY_FILE and kind == "folder")]


@pytest.mark.parametrize("name, kind", CASES)
def test_wrong_kind_of_path_gives_one_line(name, kind, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)            # whatever a command writes beside its inputs stays here
    module = importlib.import_module(name)
    parser = module.build_parser()
    path = _cases(tmp_path)[kind]
    if name in ONLY_FILE:
        argv = [ONLY_FILE[name][0], str(path)]
    else:
        argv = _argv(parser, str(path))
    status = module.main(argv)             # an exception here is the failure this test is for
    err = capsys.readouterr().err
    assert isinstance(status, int)
    if status != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines, f"{name} {argv}: exit {status} with nothing on stderr"
        assert "Traceback" not in err, err
        assert lines[-1].startswith(f"{parser.prog}: "), f"{name} {argv}: {err}"


def _gradient_config(tmp_path):
    from tests import tiny_corpus

    root = tiny_corpus.write(tmp_path)
    keys = dict(save_path=root / "model", log_dir=root / "logs", data_path=root / "data", vocab=False, batch_size=1,
                num_steps=6, size=4, embedding_size=3, basic_cell="LSTM", num_layers=1, init_scale=0.5,
                softmax="full", forget_bias=0.2, grad_interm="cell", time_step="all", max_delay=3,
                grad_dir=root / "grads", grad_average=True)
    path = tmp_path / "grad.config"
    path.write_text("".join(f"{k} {v}\n" for k, v in keys.items()), encoding="utf-8")
    return str(path)


def test_a_missing_optional_extra_names_its_pip_install(tmp_path, monkeypatch, capsys):
    from aux_scripts import launch_shards

    config = _gradient_config(tmp_path)
    monkeypatch.setitem(sys.modules, "distributed", None)     # as if the cluster extra were not installed
    assert launch_shards.main(["--config", config, "--shards", "2"]) == 2
    assert capsys.readouterr().err == ("sg-launch-shards: error: the Dask engine is not installed: "
                                       "pip install 'state-gradients[cluster]' (or pip install 'dask[distributed]')\n")


def test_a_scheduler_that_does_not_answer_is_named_with_the_time_waited(tmp_path, capsys):
    pytest.importorskip("distributed", reason="the cluster extra is not installed")
    from aux_scripts import launch_shards

    config = _gradient_config(tmp_path)
    # port 9 (discard) on this machine: nothing listens there, so the connection is refused at once
    status = launch_shards.main(["--config", config, "--shards", "2", "--scheduler", "tcp://127.0.0.1:9",
                                 "--connect-timeout", "2"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert err.startswith("sg-launch-shards: error: no Dask scheduler answered at tcp://127.0.0.1:9 within 2 s"), err

"""Every command line returns an exit status from main(argv): 0 for --help, 2 for a usage error, never SystemExit."""
import importlib
import importlib.util
from pathlib import Path

import pytest

from tests.commands import MODULES, REPO

SCRIPTS = [REPO / "data" / "get_ptb.py", REPO / "data" / "get_pos_data.py", REPO / "data" / "make_demo.py"]


def _load(name):
    if isinstance(name, Path):
        spec = importlib.util.spec_from_file_location(name.stem, name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(name)


def test_every_console_command_is_checked():
    assert len(MODULES) >= 20 and "tf_scripts.main" in MODULES and "aux_scripts.reproduce" in MODULES


@pytest.mark.parametrize("name", MODULES + SCRIPTS, ids=str)
def test_help_and_usage_errors_return_a_status(name, capsys):
    module = _load(name)
    assert module.main(["--help"]) == 0
    assert "usage:" in capsys.readouterr().out
    assert module.main(["--no-such-flag-anywhere"]) == 2
    assert "usage:" in capsys.readouterr().err

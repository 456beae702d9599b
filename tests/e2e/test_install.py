"""The wheel: it carries the API, the demo's corpus and configs, and the demo and sg-reproduce find them there."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# the console commands setup.py installs: core/commands.py's table, read as setup.py reads it
SETUP_COMMANDS = len(__import__("runpy").run_path(str(REPO / "state_gradients" / "core" / "commands.py"))["COMMANDS"])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(REPO)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"pip wheel failed: {done.stderr[-2000:]}")
    (path,) = out.glob("state_gradients-*.whl")
    return path


def test_wheel_holds_demo_data_and_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("train.txt", "valid.txt", "test.txt", "pos_mapping.txt", "classes/nouns.txt", "classes/verbs.txt"):
        assert f"aux_scripts/demo_data/{name}" in names
    assert {"aux_scripts/demo_configs/demo.config", "aux_scripts/demo_configs/demo_grad.config"} <= names
    assert not any(n.startswith("aux_scripts/demo_configs/ptb") for n in names)   # only the demo's configs
    assert "aux_scripts/pos_classes/nouns.txt" in names
    assert {"state_gradients/__init__.py", "state_gradients/api/profile.py", "state_gradients/core/results.py"} <= names


def test_installed_demo_finds_its_files_in_the_package(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = ("from state_gradients.workflows import demo\n"
              "print(demo.resource_dir(demo.DATA_PACKAGE, demo.DATA_SOURCE))\n"
              "print(demo.resource_dir(demo.CONFIG_PACKAGE, demo.CONFIG_SOURCE))\n"
              "print(demo.__file__)\n"
              "import state_gradients, state_gradients.core.commands as c\n"
              "print(state_gradients.__file__, len(c.COMMANDS))\n")
    env = dict(os.environ, PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    data, configs, module, api, commands = done.stdout.split()
    assert Path(module).is_relative_to(site) and Path(api).is_relative_to(site)
    # no setup.py there: sg-reproduce's command table is the installed core/commands.py
    assert int(commands) == SETUP_COMMANDS
    assert Path(data) == site / "aux_scripts" / "demo_data" and (Path(data) / "train.txt").is_file()
    assert Path(configs) == site / "aux_scripts" / "demo_configs" and (Path(configs) / "demo.config").is_file()

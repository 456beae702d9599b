"""What a person sees in the terminal: --help and --version without TensorFlow, the command's own name, no TF noise."""
import json
import os
import re
import subprocess
import sys

import pytest

from state_gradients.core.version import __version__
from tests.commands import MODULES, REPO

# a line of TensorFlow's C++ logging (absl format: severity letter, MMDD or 0000, time) or its notes
TF_NOISE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|cuInit|oneDNN|cpu_feature_guard|rebuild TensorFlow", re.M)


def _python(code, env=None, **options):
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=300, **options)


def test_help_version_and_usage_errors_never_import_tensorflow():
    # one fresh interpreter for all commands: a module that imports TensorFlow (directly or through
    # a library module) shows up in sys.modules, wherever the import hides
    code = f"""
import contextlib, io, json, sys
seen = {{}}
for name in {MODULES!r}:
    module = __import__(name, fromlist=["main"])
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes = [module.main(["--help"]), module.main(["--version"]), module.main(["--no-such-flag"])]
    seen[name] = (codes, "tensorflow" in sys.modules)
print(json.dumps(seen))
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert {name: codes for name, (codes, _) in seen.items()} == {name: [0, 0, 2] for name in MODULES}
    first = next((name for name, (_, loaded) in seen.items() if loaded), None)
    assert first is None, f"{first} loads TensorFlow before it parses its arguments"


@pytest.mark.parametrize("name", MODULES)
def test_every_command_has_a_version(name, capsys):
    module = __import__(name, fromlist=["main"])
    assert module.main(["--version"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"(state-gradients {__version__})")


@pytest.mark.parametrize("typed", ["/home/u/.venv/bin/sg-calculate-svs", "aux_scripts/calculate_svs.py"])
def test_usage_and_errors_name_the_command_as_typed(typed, monkeypatch, capsys, tmp_path):
    from aux_scripts import calculate_svs

    name = os.path.basename(typed)
    monkeypatch.setattr(sys, "argv", [typed, "--no-such-flag"])
    assert calculate_svs.main() == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {name} ") and f"\n{name}: error: the following arguments are required" in err
    monkeypatch.setattr(sys, "argv", [typed, str(tmp_path), str(tmp_path / "missing.npy")])
    assert calculate_svs.main() == 2
    assert capsys.readouterr().err.startswith(f"{name}: error: ")
    # called from Python with an argv, a command keeps its own name
    assert calculate_svs.main(["--no-such-flag"]) == 2
    assert capsys.readouterr().err.startswith("usage: calculate_svs.py ")


def _demo_config(tmp_path):
    text = (REPO / "config" / "demo.config").read_text(encoding="utf-8")
    text = re.sub(r"^save_path .*$", f"save_path {tmp_path / 'model'}", text, flags=re.M)
    text = re.sub(r"^log_dir .*$", f"log_dir {tmp_path / 'logs'}", text, flags=re.M)
    text = re.sub(r"^data_path .*$", f"data_path {REPO / 'data' / 'demo'}", text, flags=re.M)
    path = tmp_path / "demo.config"
    path.write_text(text, encoding="utf-8")
    return path


def test_tensorflow_is_quiet_unless_verbose(tmp_path):
    # without the TF_CPP_MIN_LOG_LEVEL that a CI script or a user may set: the default a person meets
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP_", "ABSL_"))}
    config = _demo_config(tmp_path)
    argv = ["--notrain", "--fresh_weights", "--export_weights", "--config", str(config)]

    def main_py(*extra):
        return _python(f"import sys; from tf_scripts.main import main; sys.exit(main({[*argv, *extra]!r}))", env=env)

    quiet = main_py()
    assert quiet.returncode == 0, quiet.stderr
    assert not TF_NOISE.search(quiet.stderr), quiet.stderr
    # the terminal shows a summary; the full configuration is in the log file
    assert "init_scale\t" not in quiet.stdout and "the full configuration is in " in quiet.stdout
    log = next((tmp_path / "logs").glob("*.log")).read_text(encoding="utf-8")
    assert "init_scale\t0.1" in log and "TensorFlow version: " in log
    verbose = main_py("--verbose")
    assert verbose.returncode == 0, verbose.stderr
    # TensorFlow's own lines differ between builds and CPUs; where this one prints some, --verbose shows them
    print("TensorFlow's lines under --verbose:", TF_NOISE.findall(verbose.stderr))

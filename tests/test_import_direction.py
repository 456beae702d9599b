"""Dependencies run one way: tf_scripts <- aux_scripts <- state_gradients (the public API); never back."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TF_SCRIPTS = sorted((ROOT / "tf_scripts").glob("*.py"))
AUX_SCRIPTS = sorted((ROOT / "aux_scripts").rglob("*.py"))
API = sorted((ROOT / "state_gradients").glob("*.py"))
COMMANDS = {p.stem for p in (ROOT / "aux_scripts").glob("*.py") if "def main(" in p.read_text()}


def imported_modules(source):
    """Every module named by an import statement anywhere in source (function bodies included)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_check_sees_nested_and_from_imports():
    source = "import os\ndef f():\n    from aux_scripts import analysis\n"
    assert any(name.startswith("aux_scripts") for name in imported_modules(source))


@pytest.mark.parametrize("path", TF_SCRIPTS, ids=lambda p: p.name)
def test_tf_scripts_module_does_not_import_aux_scripts_or_the_api(path):
    bad = sorted(n for n in imported_modules(path.read_text()) if n.split(".")[0] in ("aux_scripts", "state_gradients"))
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", AUX_SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_aux_scripts_module_does_not_import_the_api(path):
    # the API is the top layer: it names what the two folders hold, they never need it
    bad = sorted(n for n in imported_modules(path.read_text()) if n.split(".")[0] == "state_gradients")
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", API, ids=lambda p: p.name)
def test_api_module_imports_no_command_line_entry_point(path):
    # the command lines are thin layers beside the API: the API calls the functions they call, never their main()
    tree = ast.parse(path.read_text())
    calls = [node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr in ("main", "_main", "parse_args")]
    assert not calls, f"{path.name} calls {calls}"
    bad = sorted(n for n in imported_modules(path.read_text()) if n == "tf_scripts.main"
                 or (n.count(".") == 1 and n.startswith("aux_scripts.") and n.split(".")[1] in COMMANDS))
    assert not bad, f"{path.name} imports the command module(s) {bad}"


TEST_MODULES = sorted(Path(__file__).resolve().parent.glob("test_*.py"))


@pytest.mark.parametrize("path", TEST_MODULES, ids=lambda p: p.name)
def test_test_modules_do_not_import_each_other(path):
    bad = sorted(n for n in imported_modules(path.read_text()) if n.startswith("tests.test_"))
    assert not bad, f"{path.name} imports {bad} (shared helpers go to conftest.py or a helper module)"


LIBRARY = sorted(p for p in (ROOT / "aux_scripts").rglob("*.py") if p.parent != ROOT / "aux_scripts")


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_module_has_no_prologue_and_imports_no_command(path):
    # modules that are only imported need no sys.path prologue; commands sit on top of them, never below
    text = path.read_text()
    assert "sys.path.insert" not in text and "noqa: E402" not in text, path.name
    bad = sorted(n for n in imported_modules(text) if n.count(".") == 1 and n.startswith("aux_scripts.")
                 and n.split(".")[1] in COMMANDS)
    assert not bad, f"{path.name} imports the command module(s) {bad}"


def test_the_library_subpackages_exist():
    assert {p.parent.name for p in LIBRARY} >= {"measures", "classes", "importing"} and len(COMMANDS) >= 25

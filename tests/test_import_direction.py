"""Dependencies run one way: tf_scripts (the toolkit) never imports aux_scripts (the analysis on top of it)."""
import ast
from pathlib import Path

import pytest

TF_SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "tf_scripts").glob("*.py"))


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
def test_tf_scripts_module_does_not_import_aux_scripts(path):
    bad = sorted(n for n in imported_modules(path.read_text()) if n.split(".")[0] == "aux_scripts")
    assert not bad, f"{path.name} imports {bad}"


TEST_MODULES = sorted(Path(__file__).resolve().parent.glob("test_*.py"))


@pytest.mark.parametrize("path", TEST_MODULES, ids=lambda p: p.name)
def test_test_modules_do_not_import_each_other(path):
    bad = sorted(n for n in imported_modules(path.read_text()) if n.startswith("tests.test_"))
    assert not bad, f"{path.name} imports {bad} (shared helpers go to conftest.py or a helper module)"

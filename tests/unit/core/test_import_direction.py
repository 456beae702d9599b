"""Dependencies run one way: the library's sub-packages in LAYERS order, the command lines on top; never back."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LIBRARY = ROOT / "state_gradients"
# Each sub-package may import the ones of a lower rank (and its own modules); equal ranks never import each other.
LAYERS = {"core": 0, "plots": 1, "models": 2, "engine": 3, "files": 3, "training": 4, "passes": 5, "measures": 6,
          "classes": 7, "importing": 7, "report": 8, "workflows": 9, "api": 10}
MODULES = sorted(p for p in LIBRARY.rglob("*.py") if p.parent != LIBRARY)
COMMANDS = sorted((ROOT / "aux_scripts").glob("*.py")) + [ROOT / "tf_scripts" / "main.py"]


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
    source = "import os\ndef f():\n    from state_gradients.api import models\n"
    assert "state_gradients.api.models" in imported_modules(source)


def test_every_sub_package_has_a_layer_and_a_one_line_docstring():
    packages = {p.name for p in LIBRARY.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages == set(LAYERS)
    for name in packages:
        doc = ast.get_docstring(ast.parse((LIBRARY / name / "__init__.py").read_text()))
        assert doc and "\n" not in doc, name


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_module_imports_only_lower_layers(path):
    own = path.relative_to(LIBRARY).parts[0]
    bad = []
    for name in imported_modules(path.read_text()):
        top = name.split(".")[0]
        if top in ("tf_scripts", "aux_scripts") or name == "state_gradients":
            bad.append(name)            # a command, or the package's lazy re-exports (the top layer)
        elif top == "state_gradients":
            target = name.split(".")[1]
            if target != own and LAYERS.get(target, 99) >= LAYERS[own]:
                bad.append(name)
    assert not bad, f"{path.name} ({own}, layer {LAYERS[own]}) imports {sorted(bad)}"


def test_library_modules_need_no_path_prologue():
    for path in MODULES:
        text = path.read_text()
        assert "sys.path.insert" not in text and "noqa: E402" not in text, path


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: p.name)
def test_command_imports_the_library_and_no_other_command(path):
    # the command folders hold only the original's command lines: flags -> a library call -> printed lines
    bad = sorted(n for n in imported_modules(path.read_text())
                 if n.split(".")[0] in ("tf_scripts", "aux_scripts") and n.count(".") >= 1
                 and n.rsplit(".", 1)[-1] != "__init__")
    allowed = {"aux_scripts.avg_gradient_matrix"} if path.name == "avg_gradient_matrix_pos.py" else set()
    assert set(bad) <= allowed, f"{path.name} imports {bad}"


def test_the_command_folders_hold_no_library_code():
    assert sorted(p.name for p in (ROOT / "tf_scripts").glob("*.py")) == ["__init__.py", "main.py"]
    folders = {p.name for p in (ROOT / "aux_scripts").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == {"pos_classes", "pipeline"}
    # pipeline/ keeps only the tutorial's old import path, a re-export
    assert sorted(p.name for p in (ROOT / "aux_scripts" / "pipeline").glob("*.py")) == ["__init__.py", "demo.py"]
    from aux_scripts.pipeline import demo as old
    from state_gradients.workflows import demo

    assert old.run_demo is demo.run_demo


def test_importing_a_low_layer_does_not_run_the_library():
    # state_gradients/__init__ re-exports lazily: importing core does not import the top layers
    import subprocess
    import sys

    code = ("import sys; import state_gradients.core.errors; "
            "print(sorted(m for m in sys.modules if m.startswith('state_gradients.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert eval(out) == ["state_gradients.core", "state_gradients.core.errors"], out


TEST_MODULES = sorted(Path(__file__).resolve().parents[2].rglob("test_*.py"))


@pytest.mark.parametrize("path", TEST_MODULES, ids=lambda p: p.name)
def test_test_modules_do_not_import_each_other(path):
    bad = sorted(n for n in imported_modules(path.read_text())
                 if n.startswith("tests.") and n.split(".")[-1].startswith("test_"))
    assert not bad, f"{path.name} imports {bad} (shared helpers go to conftest.py or a helper module)"


def _family_comparisons(source):
    """Lines that compare something with a model family's name, or test isinstance against a model class."""
    from state_gradients.core.families import FAMILIES

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in FAMILIES for o in operands):
                found.append(node.lineno)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
            names = [n.id if isinstance(n, ast.Name) else getattr(n, "attr", None) for n in ast.walk(node.args[1])]
            if {"LanguageModel", "TransformerLM"} & set(names):
                found.append(node.lineno)
    return found


def test_the_check_sees_a_family_branch():
    assert _family_comparisons("if config.basic_cell == 'Transformer':\n    pass\n") == [1]
    assert _family_comparisons("x = isinstance(m, transformer.TransformerLM)\n") == [1]
    assert _family_comparisons("if config.family.stateful:\n    pass\n") == []


# importing/ names source layer kinds ("LSTM" in a Keras file) only as keys of layouts.KINDS and layouts.LAYOUTS
FAMILY_EXEMPT = ("models",)


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(LIBRARY).parts[0] not in FAMILY_EXEMPT
                                  and p.name != "families.py"], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_library_module_outside_models_branches_on_a_family_name(path):
    # the family's facts come from core/families.py (one line per family), never from comparing its name
    assert not _family_comparisons(path.read_text()), path

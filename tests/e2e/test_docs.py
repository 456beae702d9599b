"""The docs site: it builds with warnings as errors, its generated references are complete, it points nowhere outside."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

from state_gradients.core import configuration
from tests.commands import REPO, SCRIPTS

_SPEC = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
hooks = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(hooks)


def test_command_reference_lists_every_console_command_and_flag():
    text = hooks.command_reference()
    for name, module_name in SCRIPTS.items():
        assert f"## `{name}`\n" in text, name
        assert f"Also `python {module_name.replace('.', '/')}.py`." in text, name
        parser = importlib.import_module(module_name).build_parser()
        section = text.split(f"## `{name}`\n", 1)[1].split("\n## `", 1)[0]
        assert f"usage: {name} " in section
        for action in parser._actions:        # every flag and positional argument the parser accepts
            for option in action.option_strings or [action.metavar or action.dest]:
                assert option in section, (name, option)


def test_command_reference_lists_the_data_scripts():
    text = hooks.command_reference()
    for relative in ("data/get_ptb.py", "data/get_pos_data.py", "data/make_demo.py"):
        section = text.split(f"## `{relative}`\n", 1)[1].split("\n## `", 1)[0]
        assert f"usage: {relative.split('/')[1]} " in section and "--version" in section


def test_config_reference_lists_every_key():
    rows = {line.split(" | ")[0].lstrip("| ").removesuffix(" (NEW)") for line in hooks.config_reference().splitlines()
            if line.startswith("| ") and not line.startswith("| key |")}
    assert rows == set(configuration.KEYS)


def test_every_generated_part_is_asked_for_and_known():
    asked = {}
    for page in (REPO / "docs").rglob("*.md"):
        for part in hooks.MARKER.findall(page.read_text(encoding="utf-8")):
            asked[part] = page.relative_to(REPO / "docs").as_posix()
    assert asked == {"commands": "reference/commands.md", "config-keys": "reference/config.md",
                     "tutorial": "tutorial.md"}
    with pytest.raises(ValueError, match="unknown generated part 'nope'"):
        hooks.render("<!-- generated: nope -->")


def test_tutorial_page_keeps_every_code_line_of_the_script():
    script = (REPO / "docs" / "tutorial.py").read_text(encoding="utf-8")
    page = hooks.tutorial_page()
    code = [line for line in script.splitlines() if line.strip() and not line.startswith("#")]
    assert code and all(line in page for line in code)
    assert not re.search(r"^# %%", page, re.M)


def _tracked_text_files():
    names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    return [REPO / n for n in names if n.endswith((".md", ".py", ".config", ".sh", ".yml", ".txt"))
            and not n.startswith("tests/") and (REPO / n).is_file()]


def test_no_doc_or_code_comment_points_outside_the_repository():
    # the tests read their data from ../shared (and say so); nothing a user reads may
    outside = re.compile(r"\.\./shared|shared/(?:SPEC|DESIGN)\.md|\bSPEC \d")
    hits = [f"{path.relative_to(REPO)}:{i}: {line.strip()}" for path in _tracked_text_files()
            for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if outside.search(line)]
    assert not hits, "\n".join(hits)


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and mkdocs-material is not installed (pip install -e '.[docs]')")
        pytest.skip("mkdocs-material is not installed: pip install -e '.[docs]'")
    # mkdocs.yml sets strict: every warning (a broken internal link or anchor, a page outside the
    # nav, a docstring mkdocstrings cannot read) fails the build; external links are never fetched
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"^(WARNING|ERROR)", result.stderr, re.M), result.stderr
    site = tmp_path / "site"
    commands = (site / "reference" / "commands" / "index.html").read_text(encoding="utf-8")
    assert all(f"<code>{name}</code>" in commands for name in SCRIPTS)
    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    import state_gradients
    # each name is documented at its home module (state_gradients/__init__.py loads it from there)
    missing = [name for name in state_gradients.__all__ if name != "__version__"
               and f'id="{state_gradients._HOMES[name]}.{name}"' not in api]
    assert not missing, f"the API reference lacks {missing}"
    shutil.rmtree(site)

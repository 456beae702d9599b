"""MkDocs hooks: the command and config-key references, generated from the parsers and the key table at build time."""
# A page asks for a generated part with a marker line, replaced before the page is rendered:
#     <!-- generated: commands -->     every console command: its script path, description and --help
#     <!-- generated: config-keys -->  the table of every config key (state_gradients/core/configuration.py KEYS)
#     <!-- generated: tutorial -->     docs/tutorial.py as text and code blocks (the suite runs the script)
# Both import only what --help imports (no TensorFlow), so the docs build in seconds.
import importlib
import importlib.util
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)
HELP_WIDTH = "80"   # argparse wraps --help to $COLUMNS: one width for every build, that of the page


def console_scripts():
    """{console command: module}: state_gradients/core/commands.py's table (the one list of commands)."""
    from state_gradients.core.commands import COMMANDS

    return dict(COMMANDS)


def command_help(name, module):
    """The --help text of a command module, with the name the command is run by in its usage."""
    parser = module.build_parser()
    parser.prog = os.path.basename(name)
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        return parser.format_help()
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def script_path(module_name):
    """The script a command also runs as, e.g. aux_scripts/report.py."""
    return module_name.replace(".", "/") + ".py"


DATA_SCRIPTS = ("data/get_ptb.py", "data/get_pos_data.py", "data/make_demo.py")   # scripts, not console commands


def _script_module(relative):
    spec = importlib.util.spec_from_file_location(os.path.basename(relative)[:-3], os.path.join(REPO, relative))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _section(name, module, also):
    summary = (module.__doc__ or "").strip().split("\n")[0]
    return f"## `{name}`\n\n{summary}\n\n{also}\n\n```text\n{command_help(name, module)}```\n"


def command_reference():
    """Markdown: one section per console command, in setup.py's order, then the data scripts."""
    parts = [_section(name, importlib.import_module(module_name), f"Also `python {script_path(module_name)}`.")
             for name, module_name in console_scripts().items()]
    parts.append("## The data scripts\n\nRun from the repository root; they fetch or generate data into `data/`.\n")
    parts += [_section(relative, _script_module(relative), f"`python {relative}`") for relative in DATA_SCRIPTS]
    return "\n".join(parts)


def config_reference():
    """Markdown: the table of every config key."""
    from state_gradients.core import configuration

    return configuration.markdown_table()


def tutorial_page():
    """Markdown of docs/tutorial.py: its `# %% [markdown]` cells as text, its code cells as Python blocks."""
    with open(os.path.join(REPO, "docs", "tutorial.py"), encoding="utf-8") as handle:
        parts = re.split(r"^# %%(.*)\n", handle.read(), flags=re.M)
    blocks = []
    for tag, body in zip(parts[1::2], parts[2::2]):
        body = body.strip("\n")
        if not body:
            continue
        if tag.strip() == "[markdown]":
            blocks.append("\n".join(re.sub(r"^# ?", "", line) for line in body.split("\n")))
        else:
            blocks.append(f"```python\n{body}\n```")
    return "\n\n".join(blocks) + "\n"


GENERATORS = {"commands": command_reference, "config-keys": config_reference, "tutorial": tutorial_page}


def render(markdown):
    """The page with every marker replaced by its generated part (ValueError for an unknown one)."""
    def replace(match):
        if match.group(1) not in GENERATORS:
            raise ValueError(f"unknown generated part {match.group(1)!r} (known: {', '.join(GENERATORS)})")
        return GENERATORS[match.group(1)]()
    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown, page, config, files):
    return render(markdown)

"""The console commands of core/commands.py's table (what setup.py installs), for the tests that run every one."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# read from the file, as setup.py reads it, not imported: a test of the table must not depend on the package
SCRIPTS = dict(re.findall(r'"(sg-[a-z0-9-]+)": "([a-z0-9_.]+)"',
                          (REPO / "state_gradients" / "core" / "commands.py").read_text()))
MODULES = sorted(set(SCRIPTS.values()))

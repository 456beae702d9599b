"""The console commands of setup.py's SCRIPTS table, for the tests that run every one of them."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = dict(re.findall(r'"(sg-[a-z0-9-]+)": "([a-z0-9_.]+)"', (REPO / "setup.py").read_text()))
MODULES = sorted(set(SCRIPTS.values()))

"""The version of state-gradients (setup.py reads it from here)."""
__version__ = "0.1.0"


def commit():
    """The git commit of this source checkout (short hash, `+dirty` when it has changes), else None."""
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # state_gradients/core/
    if not os.path.isdir(os.path.join(root, ".git")):
        return None      # an installed copy: the version says what it is
    try:
        run = lambda *args: subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,  # noqa: E731
                                           timeout=10, check=True).stdout.strip()
        return run("rev-parse", "--short", "HEAD") + ("+dirty" if run("status", "--porcelain", "--untracked-files=no")
                                                      else "")
    except (OSError, subprocess.SubprocessError):
        return None

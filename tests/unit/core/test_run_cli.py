"""run_cli: a user's mistake or environment gives one line on stderr and exit status 2, never a traceback."""
import errno
import os

import pytest

from state_gradients.core.cli import run_cli
from state_gradients.core.errors import UserError


def test_user_error_is_one_line(capsys):
    def body(argv):
        raise UserError("bad value")
    assert run_cli(body, [], "sg-x") == 2
    assert capsys.readouterr().err == "sg-x: error: bad value\n"


def test_a_refused_path_is_one_line_naming_it(tmp_path, capsys):
    (tmp_path / "f").write_text("x")

    def body(argv):
        os.makedirs(tmp_path / "f" / "below")     # a file where a folder belongs
    assert run_cli(body, [], "sg-x") == 2
    assert capsys.readouterr().err == f"sg-x: error: {tmp_path / 'f' / 'below'}: {os.strerror(errno.ENOTDIR)}\n"


def test_an_os_error_without_a_path_is_a_bug_and_not_hidden():
    def body(argv):
        raise OSError(errno.EIO, "input/output error")
    with pytest.raises(OSError):
        run_cli(body, [], "sg-x")


def test_argparse_exit_becomes_a_status():
    def body(argv):
        raise SystemExit(0)
    assert run_cli(body, [], "sg-x") == 0

"""The one exception type for a user's mistake (a bad config, flag, file or value)."""


class UserError(Exception):
    """A bad config, flag, file or value: printed as one line, exit status 2, no traceback (cli.run_cli)."""

"""Error types that the CLI translates into exit codes (SPEC §1).

Library code raises these with one clear paragraph that names the offending key or
path, what was expected, what was received and the fix. `cli.py` prints the message
and exits with `exit_code`; no traceback reaches the user.
"""


class RegcliError(Exception):
    """Base class of every error regcli reports to users."""

    exit_code = 1


class BadInputError(RegcliError):
    """A spec, data file, run directory or argument is unusable (exit code 2)."""

    exit_code = 2


class SpecError(BadInputError):
    """An experiment or sweep spec is invalid (exit code 2)."""


class DataError(BadInputError):
    """A data set cannot be loaded or split as asked (exit code 2)."""


class RunDirError(BadInputError):
    """A run directory is missing, incomplete or corrupt (exit code 2)."""


class RunFailedError(RegcliError):
    """A training run failed or diverged (exit code 1)."""

    exit_code = 1


class Interrupted(RegcliError):
    """Ctrl-C during training: the run directory is consistent, state `interrupted` (exit 130)."""

    exit_code = 130

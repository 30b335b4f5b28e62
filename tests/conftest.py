"""Set-up shared by every test file."""

from __future__ import annotations

import signal


def pytest_configure(config):
    """Ctrl-C reaches the regcli processes the tests start, however the suite itself was started.

    A test run started as a background job (`make test &`, a CI runner's `cmd &`) inherits SIGINT
    *ignored*; an ignored signal stays ignored across exec, and Python then installs no
    KeyboardInterrupt handler, so the Ctrl-C tests' `regcli` children would never see it. A
    handler (unlike SIG_IGN) is reset to the default by exec, so the children start as from a terminal.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)

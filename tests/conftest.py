"""Set-up shared by every test file."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile

# On Linux, Ray binds a local cluster to the network interface's address (and turns 127.0.0.1 into
# it). Set to "0" before any test imports Ray, it makes every Ray a test starts, and the processes
# Ray spawns, use 127.0.0.1 only. (regcli sets it itself: see regcli.sweep.executors.keep_ray_on_loopback.)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# Ray nices its task workers to 15; beside other CPU-bound work (a shared CI machine) they then got
# ~3% of a core and the Ray sweep tests timed out. The tests' clusters run them at normal priority,
# as regcli's own local Ray does.
os.environ["RAY_worker_niceness"] = "0"
# regcli's cache (the JAX compilation cache, the workers' launcher: regcli.cache) goes to a directory
# of this test session, not the user's ~/.cache: no test reads what an earlier session compiled.
_CACHE = tempfile.mkdtemp(prefix="regcli-test-cache-")
os.environ["REGCLI_CACHE_DIR"] = _CACHE


def pytest_configure(config):
    """Ctrl-C reaches the regcli processes the tests start, however the suite itself was started.

    A test run started as a background job (`make test &`, a CI runner's `cmd &`) inherits SIGINT
    *ignored*; an ignored signal stays ignored across exec, and Python then installs no
    KeyboardInterrupt handler, so the Ctrl-C tests' `regcli` children would never see it. A
    handler (unlike SIG_IGN) is reset to the default by exec, so the children start as from a terminal.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE, ignore_errors=True)

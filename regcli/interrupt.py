"""Ctrl-C during training takes effect at a safe point, never in the middle of a library call.

Python raises `KeyboardInterrupt` wherever the main thread happens to be. Inside
TensorFlow that can be an import (`SystemError: <built-in function __import__> returned a
result with an exception set`), a `__del__` ("Exception ignored in ..." and a traceback) or
a half-assigned variable. While `deferred()` is active, SIGINT only records the request;
`check()` raises `KeyboardInterrupt` at the points regcli chooses: after the imports and
the data, and at the end of each batch execution and epoch of a `fit` (`InterruptCheck`).
A second Ctrl-C raises at once (unless `escalate=False`: sweep workers, whose sweep
process stops them itself after a grace period).

No Keras here: `InterruptCheck` is made on first use, by the training modules only.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

_pending = False
_escalate = True


def _on_sigint(signum, frame) -> None:
    global _pending
    if _pending and _escalate:
        raise KeyboardInterrupt
    if not _pending:
        _pending = True
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write("\nCtrl-C: stopping at the end of this step"
                             + (" (Ctrl-C again to stop at once)" if _escalate else "") + ".\n")


@contextlib.contextmanager
def deferred(*, escalate: bool = True) -> Iterator[None]:
    """Defers SIGINT to `check()` for the block (main thread only; an ignored SIGINT stays ignored).

    A request still pending when the block ends (the work finished first) is dropped:
    the work is done, and its result stands.
    """
    global _pending, _escalate
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, _on_sigint):  # a background job; or already deferred (nested)
        yield
        return
    _pending, _escalate = False, escalate
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _pending = False


def check() -> None:
    """Raises `KeyboardInterrupt` here when Ctrl-C was pressed inside `deferred()`."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


def caused_by_ctrl_c(exc: BaseException) -> bool:
    """True for an error that a Ctrl-C caused inside a library (e.g. during an import)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def quiet_unraisable_ctrl_c() -> None:
    """A Ctrl-C that lands in a `__del__` is not printed as "Exception ignored in ..." with a traceback."""
    default = sys.unraisablehook

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            return
        default(unraisable)

    sys.unraisablehook = hook


_callback_class = None


def InterruptCheck():  # noqa: N802 - a class made on first use, so that this module needs no Keras
    """A Keras callback that calls `check()` after every batch execution and epoch."""
    global _callback_class
    if _callback_class is None:
        import keras

        class _InterruptCheck(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                check()

            def on_test_batch_end(self, batch, logs=None):
                check()

            def on_epoch_end(self, epoch, logs=None):
                check()

        _callback_class = _InterruptCheck
    return _callback_class()

"""Ctrl-C and SIGTERM that cannot be lost.

A ``KeyboardInterrupt`` raised inside a weakref callback or ``__del__`` is swallowed by
Python, so the handler also sets a flag that the training loops check at safe points; inside
:func:`deferred` (a write to the study's store, which must not be cut in two) a stop is only
recorded. A swallowed stop is kept off stderr by an unraisable hook.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

_STOP = threading.Event()
_deferring = 0  # how many deferred() sections the main thread is in
_previous_hook = sys.unraisablehook


def _request_stop(signum: int, frame: object) -> None:
    _STOP.set()
    if not _deferring:
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A section a stop request does not cut: the next :func:`raise_if_stopped` raises it."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1


def install_handlers() -> None:
    """SIGINT (even if a shell started bnsearch with it ignored) and SIGTERM both take the
    Ctrl-C path."""
    global _previous_hook
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    if sys.unraisablehook is not _quiet_unraisable:  # once, not stacked
        _previous_hook, sys.unraisablehook = sys.unraisablehook, _quiet_unraisable


def _quiet_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """Drop a requested stop's ``KeyboardInterrupt`` (the flag keeps it); pass on the rest."""
    if not (_STOP.is_set() and issubclass(unraisable.exc_type, KeyboardInterrupt)):
        _previous_hook(unraisable)


def raise_if_stopped() -> None:
    """Raise the KeyboardInterrupt a stop request may have lost."""
    if _STOP.is_set():
        raise KeyboardInterrupt

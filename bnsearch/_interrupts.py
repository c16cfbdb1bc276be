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
from collections.abc import Callable, Iterator

_STOP = threading.Event()
_deferring = 0  # how many deferred() sections the main thread is in


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
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    if not getattr(sys.unraisablehook, "quiets_stops", False):  # once, not stacked
        sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)


def _quiet_unraisable(
    previous: Callable[[sys.UnraisableHookArgs], object],
) -> Callable[[sys.UnraisableHookArgs], None]:
    """An unraisable hook that drops a requested stop's ``KeyboardInterrupt`` (the flag
    keeps it) and passes anything else to ``previous``."""

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        kind = getattr(unraisable, "exc_type", None)
        if _STOP.is_set() and isinstance(kind, type) and issubclass(kind, KeyboardInterrupt):
            return
        previous(unraisable)

    hook.quiets_stops = True  # type: ignore[attr-defined]
    return hook


def stop_requested() -> bool:
    return _STOP.is_set()


def raise_if_stopped() -> None:
    """Raise the KeyboardInterrupt a stop request may have lost."""
    if _STOP.is_set():
        raise KeyboardInterrupt

"""Ctrl-C and SIGTERM that cannot be lost.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when a signal
arrives. Inside a weakref callback or a ``__del__`` (TensorFlow and SQLAlchemy run many),
Python prints "Exception ignored" and carries on, so a study could train to the end after
Ctrl-C. bnsearch's handler therefore also sets a flag, and the training loops check it at
safe points (every epoch of every engine, every trial of Keras Tuner, every batch of
trials): a stop request is honoured within one epoch even when the exception was swallowed.

A write to the study's store (asking for a batch, telling a result) is one step that must
not be cut in two: a ``KeyboardInterrupt`` raised inside SQLAlchemy's commit left the
session rolled back, the abandon that followed failed with it, and a trial stayed RUNNING
(seen once in the Ctrl-C test). Inside :func:`deferred` a stop request is only recorded;
the loop raises it at its next safe point, where the trials in flight are failed cleanly.

A stop request swallowed that way is still reported by Python on stderr ("Exception
ignored in: <function WeakKeyDictionary...> ... KeyboardInterrupt"), in the middle of what
should be one calm line. :func:`install_handlers` therefore also installs a
``sys.unraisablehook`` that drops a ``KeyboardInterrupt`` once a stop was requested (the
flag has it) and hands anything else to the hook it replaced.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["deferred", "install_handlers", "raise_if_stopped", "stop_requested"]

_STOP = threading.Event()
_deferring = 0  # how many deferred() sections the main thread is in


def _request_stop(signum: int, frame: object) -> None:
    _STOP.set()
    if not _deferring:
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A section a stop request does not cut: it is recorded and raised by the next
    :func:`raise_if_stopped` (signal handlers run in the main thread, between bytecodes)."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1


def install_handlers() -> None:
    """SIGINT and SIGTERM both take the Ctrl-C path. Also restores SIGINT when a shell
    without job control started bnsearch with it ignored, and keeps a swallowed stop
    request off stderr (:func:`_quiet_unraisable`)."""
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    if not getattr(sys.unraisablehook, "quiets_stops", False):  # once, not stacked
        sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)


def _quiet_unraisable(previous: Callable[[Any], object]) -> Callable[[Any], None]:
    """An unraisable hook that drops the ``KeyboardInterrupt`` of a requested stop (the
    flag keeps the request: the loop honours it at its next safe point) and passes
    anything else to ``previous``."""

    def hook(unraisable: Any) -> None:
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

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
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

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
    without job control started bnsearch with it ignored."""
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)


def stop_requested() -> bool:
    return _STOP.is_set()


def raise_if_stopped() -> None:
    """Raise the KeyboardInterrupt a stop request may have lost."""
    if _STOP.is_set():
        raise KeyboardInterrupt

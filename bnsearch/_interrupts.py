"""Ctrl-C and SIGTERM that cannot be lost.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when a signal
arrives. Inside a weakref callback or a ``__del__`` (TensorFlow and SQLAlchemy run many),
Python prints "Exception ignored" and carries on, so a study could train to the end after
Ctrl-C. bnsearch's handler therefore also sets a flag, and the training loops check it at
safe points (every epoch of every engine, every trial of Keras Tuner, every batch of
trials): a stop request is honoured within one epoch even when the exception was swallowed.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["install_handlers", "raise_if_stopped", "stop_requested"]

_STOP = threading.Event()


def _request_stop(signum: int, frame: object) -> None:
    _STOP.set()
    raise KeyboardInterrupt


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

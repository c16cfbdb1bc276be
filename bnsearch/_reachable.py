"""Reaching a store: a quick probe of its server (asked first so that a study never waits
out MLflow's own minutes of retries), its retry policy, and a SQLite store's file and lock."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bnsearch.errors import StoreError, sqlite_path


def make_store_folder(uri: str, store: str, flag: str) -> Path | None:
    """Make a SQLite store's folder and give its database file (None for a served store);
    where a regular file or a read-only folder is in the way, say so, naming ``flag``."""
    path = sqlite_path(uri)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"cannot create the {store} folder {path.parent} ({error.strerror}); pick a "
                f"writable place with {flag}."
            ) from None
    return path


@dataclass(frozen=True)
class RetryPolicy:
    """A failed call is tried again after each of ``delays_s``; once one has given up,
    calls fail at once for ``offline_s`` seconds (0: every call tries again)."""

    delays_s: tuple[float, ...]
    offline_s: float = 0.0


#: MLflow: four tries within ~3.5 s (plus the calls' own timeouts), then 30 s offline; the
#: trial runs are a view of the study's store, which ``sync`` back-fills.
MLFLOW_RETRY = RetryPolicy(delays_s=(0.5, 1.0, 2.0), offline_s=30.0)
#: Optuna on a database, the source of truth: about 30 s, enough for a restart or failover.
DATABASE_RETRY = RetryPolicy(delays_s=(0.5, 1.0, 2.0, 4.0, 8.0, 15.0))

#: The longest a store's server may take to answer the probe.
TIMEOUT_S = 8

_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433, "http": 80, "https": 443}


def probe(uri: str, timeout: float = TIMEOUT_S) -> None:
    """Raise ConnectionError unless the server of ``uri`` answers within ``timeout`` s (a TCP
    connection, or MLflow's ``/health``); file-based stores always pass."""
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0]
    if scheme not in _DEFAULT_PORTS:
        return
    host, port = parts.hostname or "localhost", parts.port or _DEFAULT_PORTS[scheme]
    try:
        if scheme in ("http", "https"):
            path = parts.path.rstrip("/")
            try:
                urllib.request.urlopen(f"{scheme}://{host}:{port}{path}/health", timeout=timeout)
            except urllib.error.HTTPError:
                return  # it answered; the store's own calls say what is wrong
        else:
            socket.create_connection((host, port), timeout).close()
    except OSError as error:
        reason = getattr(error, "reason", None) or error.strerror or type(error).__name__
        raise ConnectionError(
            f"no answer from {host}:{port} within {timeout:.0f} s: {reason}"
        ) from None


@contextlib.contextmanager
def opening_alone(uri: str) -> Iterator[None]:
    """Hold ``<database>.lock`` beside a SQLite store while it is opened: processes that
    create one store at once (two studies started together in one folder) collide in its
    schema migrations, so each waits for the one before. Served stores need no lock."""
    database = sqlite_path(uri)
    if database is None:
        yield
        return
    try:
        lock = open(database.with_name(database.name + ".lock"), "a")  # noqa: SIM115
    except OSError:  # a folder bnsearch cannot write: opening the store says why, if it must
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield

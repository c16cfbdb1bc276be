"""Riding out a dropped database connection (a restart, a fail-over, a terminated connection).

Connections are checked before use and opened with a timeout (:func:`engine_kwargs`);
opening the storage, every storage call (:func:`retrying_storage`) and every claim
(:func:`retry_transient`) is tried again on a transient error, after each delay of
:data:`bnsearch._reachable.DATABASE_RETRY`. A retried call whose first try did commit is
harmless except for creating a trial (the duplicate never beats and is failed as orphaned)
and telling one (refused as finished; the Optuna backend recognises its own result)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import bnsearch.backends.optuna._adapter as adapter
from bnsearch._interrupts import raise_if_stopped
from bnsearch._reachable import DATABASE_RETRY

if TYPE_CHECKING:
    from optuna.storages import RDBStorage

#: How long opening a database connection may take.
CONNECT_TIMEOUT_S = 8

T = TypeVar("T")


def served(url: str) -> bool:
    """Whether a storage URL names a database server (a SQLite file has no connection to lose)."""
    return not url.startswith("sqlite")


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine arguments: live-checked pooled connections and, for PostgreSQL, a
    connection timeout and no server-side prepared statements (a transaction-pooling
    pooler does not keep a client's session, so a prepared statement may be missing)."""
    if not served(url):
        return {}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        from sqlalchemy.engine import make_url

        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        if make_url(url).get_driver_name() == "psycopg":  # psycopg 3 (psycopg2 never prepares)
            kwargs["connect_args"]["prepare_threshold"] = None
    return kwargs


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) is a lost or refused database
    connection rather than a refusal of the request itself."""
    from sqlalchemy import exc

    lost = (exc.OperationalError, exc.InterfaceError, ConnectionError, TimeoutError)
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, lost):
            return True
        if isinstance(current, exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def retry_transient(call: Callable[[], T]) -> T:
    """``call()``, tried again after each delay of ``DATABASE_RETRY`` while it fails transiently."""
    for delay in (*DATABASE_RETRY.delays_s, None):
        try:
            return call()
        except Exception as error:
            if delay is None or not is_transient(error):
                raise
            # Between tries no transaction is open: a stop request held by a deferred
            # section (asking, telling) is honoured here, not after the whole retry.
            raise_if_stopped()
            time.sleep(delay)
    raise AssertionError("unreachable")


_DEPTH = threading.local()


def _retried(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(storage: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_DEPTH, "active", False):
            # Storage methods call one another: only the outermost one retries.
            return method(storage, *args, **kwargs)

        def once() -> Any:
            _DEPTH.active = True
            try:
                return method(storage, *args, **kwargs)
            finally:
                _DEPTH.active = False

        return retry_transient(once)

    return call


@functools.cache
def retrying_storage() -> type:
    """Optuna's ``RDBStorage`` with every storage call retried on transient errors, checking
    the table schema one connection at a time (:func:`check_schema`)."""
    retrying = adapter.rdb_storage_wrapping(_retried)

    def __init__(self: Any, url: str, *args: Any, **kwargs: Any) -> None:
        retrying.__init__(self, url, *args, skip_compatibility_check=True, **kwargs)
        self.skip_compatibility_check = False
        check_schema(self)

    return type("PoolSafeRDBStorage", (retrying,), {"__init__": __init__})


def check_schema(storage: RDBStorage) -> None:
    """Optuna's schema check, without holding a connection while it opens another (behind a
    pooler, workers opening storages at once would each hold one and wait for a second)."""
    current, head = storage.get_current_version(), storage.get_head_version()
    if current == head:
        return
    import optuna

    upgrade = current in storage.get_all_versions()
    raise RuntimeError(
        f"the table schema (revision {current}) is not the one Optuna {optuna.__version__} "
        f"uses ({head}); "
        + (
            "run `optuna storage upgrade --storage $STORAGE_URL`."
            if upgrade
            else "install the Optuna that created it, or a later one."
        )
    )

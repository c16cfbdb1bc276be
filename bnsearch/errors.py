"""Errors a user can meet, each with a one-line message naming the problem and the fix; and
a full disk under any store (:func:`full_disk`), worded as one line naming its mount point."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
from collections.abc import Iterator
from pathlib import Path


class BnsearchError(Exception):
    """Base class of every error bnsearch reports to the user without a traceback.

    Its message is one line naming the problem and the fix. Catch it to handle any of them.

    Attributes:
        exit_code: what the CLI exits with after printing the message (2; 1 for
            :class:`StudyFailedError`, 3 for :class:`LockHeldError`).

    Examples:
        >>> import bnsearch
        >>> try:
        ...     bnsearch.BNConfig(placement="middle")
        ... except bnsearch.BnsearchError as error:
        ...     print(error, error.exit_code)
        unknown placement 'middle'; choose one of none, before, after, before_output, input. 2
    """

    exit_code = 2


class UsageError(BnsearchError):
    """A command-line argument is wrong."""


class ConfigError(BnsearchError):
    """A search-space range, network setting or study setting makes no sense.

    Raised on construction by :class:`~bnsearch.BNConfig`, :class:`~bnsearch.SearchSpace`,
    :class:`~bnsearch.NetworkSettings` and :class:`~bnsearch.StudyConfig`, and by a study
    whose network cannot be built or trained as configured.

    Examples:
        >>> import bnsearch
        >>> bnsearch.StudyConfig(heartbeat_interval=60, grace_period=30)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        bnsearch.errors.ConfigError: `grace_period > heartbeat_interval` must hold, ...
    """


class DataError(BnsearchError):
    """The dataset cannot be loaded or cannot be trained on.

    Examples:
        >>> import bnsearch
        >>> bnsearch.load_dataset("no_such_file.csv")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        bnsearch.errors.DataError: data file no_such_file.csv does not exist; check the path ...
    """


class StoreError(BnsearchError):
    """The Optuna storage or the MLflow tracking store cannot be used: it cannot be created
    or reached, its driver is missing, a lock in it is held too long, or
    (:class:`StoreFullError`) it can no longer be written."""


class StoreFullError(StoreError):
    """A store cannot be written any more (disk full, quota, read-only, file-size limit):
    what it holds stays, and the same command resumes once the disk has room."""


class StudyFailedError(BnsearchError):
    """The study ran but produced no usable trial (every trial of the run failed).

    The failed trials are stored and logged; the message gives their reasons. The CLI exits
    with 1.
    """

    exit_code = 1


class LockHeldError(BnsearchError):
    """Another bnsearch process is running the same study on this machine."""

    exit_code = 3


def first_line(error: BaseException | None, empty: str = "") -> str:
    """The first line of ``str(error)`` (``empty`` when it has no text)."""
    text = str(error)
    return text.splitlines()[0] if text else empty


def name_list(names: list[str], most: int = 5) -> str:
    """``a, b and c``; past ``most`` names, ``a, b, c, d, e and 3 more``: how a message names
    what it found."""
    if len(names) > most:
        return f"{', '.join(names[:most])} and {len(names) - most} more"
    if len(names) > 1:
        return f"{', '.join(names[:-1])} and {names[-1]}"
    return names[0] if names else ""


def error_line(error: BaseException) -> str:
    """``TypeError: <its first line>``: how a message quotes an error it did not expect."""
    return f"{type(error).__name__}: {first_line(error)}"


_ERRNOS = {
    errno.ENOSPC: "no space",
    errno.EDQUOT: "quota",
    errno.EROFS: "read-only",
    errno.EFBIG: "file size limit",
}
#: What drivers and servers write instead of an errno (SQLite, PostgreSQL, an HTTP
#: server's error text); lower case.
_TEXTS = (
    ("database or disk is full", "no space"),
    ("no space left on device", "no space"),
    ("could not extend file", "no space"),
    ("disk quota exceeded", "quota"),
    ("attempt to write a readonly database", "read-only"),
    ("read-only file system", "read-only"),
)
_FULL_DISK = {
    "no space": "no space left on {place} holding {store}: free space",
    "quota": "disk quota exceeded on {place} holding {store}: free space (or raise the quota)",
    "read-only": "{place} holding {store} is read-only: make it writable",
    "file size limit": "the file size limit (ulimit -f) stops writes to {store} on {place}: "
    "raise it",
}


def full_disk(error: BaseException) -> str | None:
    """What stops writes (``no space``, ``quota``, ``read-only``, ``file size limit``) if
    ``error`` or its chain (``__cause__``, ``__context__``, a driver error's ``orig``) says
    so; else None."""
    return next((kind for e in _chain(error) if (kind := _kind_of(e))), None)


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and, once each, every error its chain holds."""
    found: list[BaseException] = []
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if isinstance(current, BaseException) and all(current is not e for e in found):
            found.append(current)
            pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return found


def _kind_of(error: BaseException) -> str | None:
    if isinstance(error, OSError) and error.errno in _ERRNOS:
        return _ERRNOS[error.errno]
    if getattr(error, "pgcode", None) == "53100":  # PostgreSQL's SQLSTATE disk_full
        return "no space"
    text = str(error).lower()
    kind = next((kind for needle, kind in _TEXTS if needle in text), None)
    # SQLite reports a write refused by RLIMIT_FSIZE (EFBIG) as a plain I/O error.
    limited = resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY
    if kind is None and "disk i/o error" in text and limited:
        return "file size limit"
    return kind


def full_disk_message(
    error: BaseException, store: str, where: str | os.PathLike[str] | None = None
) -> str | None:
    """The one line for a full disk under ``store`` (URLs already redacted), naming the mount
    point of ``where`` (its file, folder or URL); None when ``error`` is no such fault."""
    kind = full_disk(error)
    if kind is None:
        return None
    place = _mount_point(_failed_file(error) or _local_path(where))
    fix = _FULL_DISK[kind].format(place=place, store=store)
    return f"{fix} and run the same command again; what is stored is kept."


@contextlib.contextmanager
def naming_full_disk(store: str, where: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """A full disk met in the block raised as a :class:`StoreFullError` naming ``store``."""
    try:
        yield
    except StoreFullError:
        raise
    except Exception as error:
        message = full_disk_message(error, store, where)
        if message is None:
            raise
        raise StoreFullError(message) from error


def _failed_file(error: BaseException) -> Path | None:
    """The file the first ``OSError`` of the chain names, if any."""
    named = (e for e in _chain(error) if isinstance(e, OSError) and e.filename)
    return next((Path(os.fsdecode(e.filename)) for e in named), None)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?")[0])


def _local_path(where: str | os.PathLike[str] | None) -> Path | None:
    """The local file or folder of a store's path or URL; None for a store on a server."""
    if where is None:
        return None
    text = os.fspath(where)
    if "://" not in text:
        return Path(text)
    scheme, _, rest = text.partition("://")  # sqlite+pysqlite:/// is a SQLite file too
    return sqlite_path(f"sqlite://{rest}") if scheme.split("+")[0] == "sqlite" else None


def _mount_point(path: Path | None) -> str:
    """The mount point holding ``path`` (which may not exist yet), or the server's disk."""
    if path is None:
        return "the server's disk"
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return str(current)

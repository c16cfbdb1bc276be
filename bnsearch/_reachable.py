"""Whether a store's server answers at all, decided within seconds.

MLflow retries its first connection to a ``postgresql://`` store for about 100 s and an
HTTP call for minutes; bnsearch retries dropped connections too (a server restarting).
Neither should make a study wait on a server that is not there: :func:`probe` is asked
first, and a store that fails it is reported at once.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

__all__ = ["TIMEOUT_S", "probe"]

#: The longest a store's server may take to answer the probe.
TIMEOUT_S = 8

_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433, "http": 80, "https": 443}


def probe(uri: str, timeout: float = TIMEOUT_S) -> None:
    """Return if the server of ``uri`` answers within ``timeout`` s (a TCP connection for a
    database, MLflow's ``/health`` for an HTTP tracking server); raise ConnectionError
    otherwise. File-based stores (SQLite, local paths) have no server and always pass."""
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

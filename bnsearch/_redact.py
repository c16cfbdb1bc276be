"""Secrets never printed: the one helper every message, tag and log line passes URLs through
(a password in a URL's user part, which may hold ``@``, ``:`` or ``/``, or in its query)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_MASK = "***"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:password|passwd|pwd|pass|secret|token|access_token|api_key|apikey|key|"
    r"client_secret|auth|sig|signature)=)[^&;#\s]*"
)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>()]+")


def _split_userinfo(url: str) -> tuple[str, str, str, str] | None:
    """(scheme, userinfo, host and rest, query) when the URL has a user part."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return None
    rest = url[scheme.end() :]
    before_query, mark, query = rest.partition("?")
    # The host follows the *last* '@' before the query: a password may hold '@' or '/'.
    userinfo, at, host = before_query.rpartition("@")
    if not at:
        return None
    return scheme.group(0), userinfo, host, mark + query


def redact_url(url: str) -> str:
    """``url`` with its password (user part and secret query parameters) replaced by ***."""
    parts = _split_userinfo(url)
    if parts is not None:
        scheme, userinfo, host, query = parts
        user = userinfo.split(":", 1)[0]
        shown = f"{user}:{_MASK}" if ":" in userinfo else userinfo
        url = f"{scheme}{shown}@{host}{query}"
    return _QUERY_SECRET.sub(lambda m: m.group(1) + _MASK, url)


def redact_text(text: str, urls: Iterable[str | None] = ()) -> str:
    """``text`` with every URL in it redacted, and the passwords of ``urls`` hidden
    wherever they appear (a message may quote a password without its URL)."""
    for url in urls:
        parts = _split_userinfo(url) if url else None
        secret = parts[1].partition(":")[2] if parts else ""  # the password, if any
        if len(secret) >= 3:
            text = text.replace(secret, _MASK)
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)

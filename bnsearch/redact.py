"""Secrets never printed: the one helper every message, tag and log line passes URLs through."""

from __future__ import annotations

import re

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """Hide a password in a storage or tracking URL (``//user:***@host``)."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)

"""Whether a process of this machine still exists (a worker's abandoned trials and runs)."""

from __future__ import annotations

import os


def process_alive(pid: int | str) -> bool:
    """Whether process ``pid`` of this machine exists; a ``pid`` that is no number names none."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True

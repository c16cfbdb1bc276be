"""Importing TensorFlow without the C++ INFO lines it writes to descriptor 2 before its
logging is set up (``TF_CPP_MIN_LOG_LEVEL`` no longer silences them); warnings still show."""

from __future__ import annotations

import os
import re
import sys
import tempfile

_NOISE = re.compile(
    r"^(I\d{4} |WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions:)"
)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (once per process) without its C++ INFO lines on stderr."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401 - imported for its side effect, once
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not _NOISE.match(line)))
            sys.stderr.flush()

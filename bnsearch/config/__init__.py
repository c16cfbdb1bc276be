"""What a study is asked to do: defaults, the settings table, StudyConfig, flags, study files."""

from __future__ import annotations

from bnsearch.config._flags import add_flags, default_of, markdown_table
from bnsearch.config._settings import (
    DEFAULT_STORE_DIR,
    DEFAULT_THRESHOLD,
    ENGINES,
    PAIRED_TUNERS,
    QUESTIONS,
    REGISTERED_ENGINES,
    SETTINGS,
    check_settings,
    default_tracking_uri,
    needs_tensorflow,
)
from bnsearch.config._study_config import StudyConfig
from bnsearch.config._study_file import NETWORK_KEYS, STUDY_KEYS, copy_examples, load_study_file

__all__ = [
    "DEFAULT_STORE_DIR",
    "DEFAULT_THRESHOLD",
    "ENGINES",
    "NETWORK_KEYS",
    "PAIRED_TUNERS",
    "QUESTIONS",
    "REGISTERED_ENGINES",
    "SETTINGS",
    "STUDY_KEYS",
    "StudyConfig",
    "add_flags",
    "check_settings",
    "copy_examples",
    "default_of",
    "default_tracking_uri",
    "load_study_file",
    "markdown_table",
    "needs_tensorflow",
]

"""StudyConfig: names that are safe paths, and settings that must agree with each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from bnsearch.config import StudyConfig
from bnsearch.errors import ConfigError


@pytest.mark.parametrize("name", [".", "..", "a/b", "../x", ".hidden", "", "a b"])
def test_a_study_name_that_is_not_one_plain_file_name_is_refused(name):
    with pytest.raises(ConfigError, match="--study-name"):
        StudyConfig(study_name=name or "/")


def test_a_plain_name_becomes_a_path_inside_its_folder(tmp_path: Path):
    config = StudyConfig(study_name="thread.v2-a_b")
    assert config.path_under(tmp_path, ".lock") == tmp_path / "thread.v2-a_b.lock"
    assert config.path_under(tmp_path).parent == tmp_path


def test_the_grace_period_must_exceed_the_heartbeat_interval():
    with pytest.raises(ConfigError, match=r"grace_period > heartbeat_interval.*grace_period=5"):
        StudyConfig(heartbeat_interval=10, grace_period=5)
    with pytest.raises(ConfigError, match="heartbeat_interval"):
        StudyConfig(heartbeat_interval=0)
    assert StudyConfig(heartbeat_interval=1, grace_period=4).grace_period == 4


def test_a_negative_seed_is_refused_before_anything_runs():
    with pytest.raises(ConfigError, match="`seed` must be a non-negative integer"):
        StudyConfig(seed=-1)


def test_with_changes_gives_what_a_fresh_config_gives():
    """StudyConfig stores what it was given: the engine's fallback and the engine's default
    budget are computed from the fields, so changing a field changes what follows from it."""
    from bnsearch.engines import resolve

    changed = StudyConfig(engine="keras").with_changes(engine="population")
    fresh = StudyConfig(engine="population")
    assert changed == fresh
    assert changed.trials_per_run == fresh.trials_per_run == 256
    assert resolve(changed) == resolve(fresh)
    assert StudyConfig(engine="keras").trials_per_run == 16
    assert StudyConfig(n_trials=7).with_changes(engine="keras").trials_per_run == 7

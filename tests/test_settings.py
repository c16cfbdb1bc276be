"""Each setting declared once: the CLI flags, study-file keys and checks all follow the table."""

from __future__ import annotations

import dataclasses

import pytest

from bnsearch.config import (
    NETWORK_KEYS,
    SETTINGS,
    STUDY_KEYS,
    StudyConfig,
    check_settings,
    default_of,
)
from bnsearch.errors import ConfigError
from bnsearch.networks import NetworkSettings


def test_every_setting_is_a_field_of_the_dataclass_that_holds_it():
    holders = {"study": StudyConfig, "network": NetworkSettings}
    for item in SETTINGS:
        if item.section in holders:
            names = {f.name for f in dataclasses.fields(holders[item.section])}
            assert item.name in names, item.name


def test_every_study_config_field_is_a_setting_but_the_composite_ones():
    declared = {s.name for s in SETTINGS if s.section == "study"}
    fields = {f.name for f in dataclasses.fields(StudyConfig)}
    # verbose (--quiet) and details (--verbose) say what is printed, not what is studied.
    assert fields - declared == {"space", "network", "verbose", "details"}


def test_study_file_keys_are_the_settings_keys():
    assert set(STUDY_KEYS) == {s.key for s in SETTINGS if s.section == "study"}
    assert set(NETWORK_KEYS) == {s.key for s in SETTINGS if s.section == "network"}
    assert "name" in STUDY_KEYS and "study_name" not in STUDY_KEYS


def test_defaults_are_read_from_the_dataclasses():
    by_name = {s.name: s for s in SETTINGS}
    assert default_of(by_name["threshold"]) == StudyConfig().threshold
    assert default_of(by_name["epochs"]) == NetworkSettings().epochs == 20


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("population", 0, "a positive integer"),
        ("confirm_seeds", -1, "a non-negative integer"),
        ("timeout", float("nan"), "a positive number of seconds"),
        ("sampler", "cmaes", "choose one of tpe, random, grid, qmc"),
    ],
)
def test_a_value_against_its_rule_is_refused_naming_the_setting(name, value, words):
    with pytest.raises(ConfigError, match=words) as error:
        StudyConfig(**{name: value})
    assert name in str(error.value)


def test_check_settings_accepts_the_defaults():
    check_settings(StudyConfig(), "study")

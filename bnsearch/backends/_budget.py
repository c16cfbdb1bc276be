"""The budget rule of paired studies, shared by both backends: whole blocks, up to
``target_trials`` when it is set, then the confirmation round."""

from __future__ import annotations

import math

from bnsearch.config import StudyConfig

__all__ = ["paired_budget", "up_to_date_message"]


def paired_budget(config: StudyConfig, have: int) -> tuple[int, str]:
    """Trials this run plans (search in whole blocks, then the confirmation round) and how
    to say so; ``have`` is the study's search trials so far."""
    block = len(config.space.placement)
    wanted = config.n_trials if config.target_trials is None else config.target_trials - have
    search = math.ceil(max(wanted, 0) / block) * block
    confirm = config.confirm_seeds * block if search else 0
    if config.target_trials is None:
        return search + confirm, f"{config.n_trials} trials"
    return search + confirm, f"search trials up to {config.target_trials} (has {have})"


def up_to_date_message(config: StudyConfig, have: int) -> str | None:
    """What a run says when the study already holds its ``target_trials``; else None."""
    target = config.target_trials
    if target is None or have < target:
        return None
    return (
        f"bnsearch: study {config.resolved_study_name!r} is up to date ({have} of {target} "
        "search trials); nothing to do."
    )

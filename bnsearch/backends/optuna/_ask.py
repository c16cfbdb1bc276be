"""Creating the trials of paired blocks (the sampler's trial plus one per other placement
with the same values and seed) and of the confirmation round (the k-th seed shared by
every placement) in the Optuna study."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

import bnsearch.backends.optuna._adapter as adapter
from bnsearch.backends._loop import Member
from bnsearch.backends.optuna._heartbeat import first_beat
from bnsearch.config import StudyConfig
from bnsearch.trial import (
    BNConfig,
    Phase,
    TrialResult,
    TrialSpec,
    confirmation_seed,
    keys,
    trial_seed,
)

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution


def _spec_attrs(spec: TrialSpec) -> dict[str, Any]:
    """What every trial records about itself: seed, phase, block and worker (``host:pid``)."""
    attrs: dict[str, Any] = {
        "seed": spec.seed,
        keys.PHASE: spec.phase,
        keys.WORKER: f"{socket.gethostname()}:{os.getpid()}",
    }
    if spec.block is not None:
        attrs[keys.BLOCK] = spec.block
    return attrs


def claim_trial(
    study: optuna.Study,
    params: dict[str, Any],
    distributions: dict[str, BaseDistribution],
    seed: int,
    block: int,
    extra_attrs: dict[str, Any] | None = None,
    phase: Phase = Phase.SEARCH,
) -> Member:
    """Create a RUNNING trial with fixed ``params`` owned by this process, its seed, block
    and phase stored in the same insert."""
    config = BNConfig(**params)
    attrs = {**_spec_attrs(TrialSpec(-1, config, seed, block, phase)), **(extra_attrs or {})}
    trial = adapter.create_running_trial(study, params, distributions, attrs)
    first_beat(study, adapter.trial_id(trial))
    return Member(trial, TrialSpec(trial.number, config, seed, block, phase=phase))


def ask_block(study: optuna.Study, config: StudyConfig) -> list[Member]:
    """Ask one trial from the sampler, then one per other placement with the same values."""
    template = study.ask()
    first_beat(study, adapter.trial_id(template))
    first = config.space.suggest(template)
    block = template.number
    seed = trial_seed(config.seed, block)
    spec = TrialSpec(template.number, first, seed, block)
    for key, value in _spec_attrs(spec).items():
        template.set_user_attr(key, value)
    members = [Member(template, spec)]
    for placement in config.space.placement:
        if placement == first.placement:
            continue
        params = {**template.params, "placement": placement}
        members.append(claim_trial(study, params, template.distributions, seed, block))
    return members


def ask_confirmation(
    study: optuna.Study, config: StudyConfig, best: list[TrialResult]
) -> list[Member]:
    """Each placement's best configuration, once per fresh seed (``config.confirm_seeds``)."""
    members = []
    round_id = len(study.trials)
    distributions = next(
        t.distributions for t in study.get_trials(deepcopy=False) if "placement" in t.params
    )
    for k in range(config.confirm_seeds):
        seed = confirmation_seed(config.seed, round_id, k)
        for result in best:
            params = result.config.as_params()
            members.append(
                claim_trial(study, params, distributions, seed, round_id, phase=Phase.CONFIRM)
            )
    return members

"""Paired blocks and a verdict for a study that runs a person's own Optuna objective.

bnsearch's verdict compares placements within *blocks*: trials that share every other
hyperparameter and the seed. :func:`paired_objective` makes a person's training function
into an objective whose trials form such blocks: the first trial of a block draws its
parameters from the sampler (placement included) and enqueues the block's other placements
with the same values and the same seed; :func:`study_verdict` reads the blocks back and
answers both questions by the anytime-valid rule, which may be read after any trial.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bnsearch.errors import ConfigError
from bnsearch.stats import Verdict, verdict_for
from bnsearch.trial import BNConfig, SearchSpace, TrialResult, TrialSpec, TrialState, keys

__all__ = ["paired_objective", "study_verdict"]

_CONFIG_FIELDS = set(BNConfig.__dataclass_fields__)


def paired_objective(
    fit: Callable[[BNConfig, int], float], space: SearchSpace | None = None
) -> Callable[[Any], float]:
    """An Optuna objective whose trials form paired blocks of every placement.

    Args:
        fit: your training function: takes the trial's configuration and its seed
            (shared by the block's trials, so each placement starts from the same weights
            and batches) and returns the final validation loss.
        space: the search space; bnsearch's default space if None.

    Returns:
        An objective for ``study.optimize``. Each block's first trial draws its parameters
        from the sampler and enqueues the other placements with the same values; run a
        multiple of ``len(space.placement)`` trials to end on whole blocks.
    """
    space = space or SearchSpace()

    def objective(trial: Any) -> float:
        config = space.suggest(trial)
        block = trial.user_attrs.get(keys.BLOCK)
        if block is None:  # a block's first trial: the others follow with its values
            block = trial.number
            trial.set_user_attr(keys.BLOCK, block)
            for placement in space.placement:
                if placement != config.placement:
                    trial.study.enqueue_trial(
                        {**trial.params, "placement": placement},
                        user_attrs={keys.BLOCK: block},
                    )
        return float(fit(config, int(block)))

    return objective


def study_verdict(study: Any, threshold: float | None = None, until: str = "settled") -> Verdict:
    """Both answers from the paired blocks of an Optuna study of your own.

    Args:
        study: an ``optuna.Study`` whose objective is :func:`paired_objective` (or one that
            sets the user attribute ``bnsearch.block`` on each trial of a block and uses
            bnsearch's parameter names), minimizing the final validation loss.
        threshold: the smallest difference that matters (bnsearch's default if None).
        until: ``settled`` reads the anytime-valid intervals, valid after any trial;
            ``budget`` the bootstrap interval and Wilcoxon test, read once at the end.

    Returns:
        The verdict: ``bn`` answers "does BN help here?", ``placement`` "before or after?".

    Raises:
        ConfigError: the study has no paired blocks (the message says how to make them).
    """
    from bnsearch.config import DEFAULT_THRESHOLD

    results = [_result(trial) for trial in study.trials]
    paired = [r for r in results if r is not None]
    if not paired:
        raise ConfigError(
            f"study {study.study_name!r} has no paired blocks (no trial has the user attribute "
            f"{keys.BLOCK!r}); wrap your training function with "
            "bnsearch.paired_objective(train) and optimize that."
        )
    return verdict_for(
        paired, threshold=DEFAULT_THRESHOLD if threshold is None else threshold, until=until
    )


def _result(trial: Any) -> TrialResult | None:
    """A trial of a block as bnsearch's record; None outside any block or still running."""
    block = trial.user_attrs.get(keys.BLOCK)
    if block is None or "placement" not in trial.params:
        return None
    state = {"COMPLETE": TrialState.COMPLETE, "FAIL": TrialState.FAILED}.get(trial.state.name)
    if state is None:
        return None
    config = BNConfig(**{k: v for k, v in trial.params.items() if k in _CONFIG_FIELDS})
    spec = TrialSpec(trial.number, config, seed=int(block), block=int(block))
    if state is TrialState.COMPLETE:
        return TrialResult(spec, state, {"val_loss": [float(trial.value)]})
    # Optuna fails a trial whose objective returned NaN: the loss ran away, and by
    # bnsearch's rule such a trial loses its block; any other failure leaves it.
    said = str(trial.system_attrs.get("fail_reason", "")).lower()
    reason = "loss became nan" if "nan" in said else "the objective raised an exception"
    return TrialResult(spec, state, {"val_loss": []}, fail_reason=reason)

"""Paired blocks, a verdict and MLflow runs for a Keras Tuner search of your own hypermodel:
the face of :func:`bnsearch.paired_oracle_class`, :func:`bnsearch.verdict` and
:func:`bnsearch.log_keras_tuner` (their docstrings say what each does)."""

from __future__ import annotations

import math
from typing import Any

from bnsearch.backends._your_runs import YourStudyRuns, paired_verdict
from bnsearch.stats import Verdict
from bnsearch.trial import METRICS, BNConfig, TrialResult, TrialSpec, TrialState

_STATES = {"COMPLETED": TrialState.COMPLETE, "STOPPED": TrialState.PRUNED}
#: Where :func:`log_tuner` keeps each trial's per-epoch logs on the tuner.
_EPOCHS = "bnsearch_epochs"


def paired_oracle_class(base: type) -> type:
    """:func:`bnsearch.paired_oracle_class` (the siblings wait in memory: a search reloaded
    from its project starts a new block)."""

    class PairedOracle(base):  # type: ignore[misc, valid-type]
        def populate_space(self, trial_id: str) -> dict[str, Any]:
            queue = self.__dict__.setdefault("bnsearch_siblings", [])
            if queue:
                return {"status": "RUNNING", "values": queue.pop(0)}
            proposal = super().populate_space(trial_id)
            values = proposal.get("values") or {}
            if proposal.get("status") == "RUNNING" and "placement" in values:
                space = self.hyperparameters.space
                placements = next(h.values for h in space if h.name == "placement")
                queue.extend(
                    {**values, "placement": p} for p in placements if p != values["placement"]
                )
            return proposal

    PairedOracle.__name__ = f"Paired{base.__name__}"
    return PairedOracle


def tuner_verdict(tuner: Any, threshold: float | None = None, until: str = "settled") -> Verdict:
    """:func:`bnsearch.verdict` of a tuner: on the final epoch's ``val_loss`` where
    :func:`log_tuner` kept every epoch, else on Keras Tuner's best epoch's."""
    fix = (
        "make the oracle propose each configuration once per "
        "placement: bnsearch.paired_oracle_class(keras_tuner.oracles.RandomSearchOracle)."
    )
    return paired_verdict(tuner.project_name, _paired(tuner), fix, threshold, until)


def _paired(tuner: Any) -> list[TrialResult]:
    return [r for r in tuner_results(tuner) if r.spec.block is not None]


def tuner_results(tuner: Any) -> list[TrialResult]:
    """The tuner's ended trials as bnsearch's records, each in the block of the first trial
    with the same values but the placement (no block where no other placement has them)."""
    ended = sorted(
        (t for t in tuner.oracle.trials.values() if t.status in (*_STATES, "FAILED", "INVALID")),
        key=lambda t: int(t.trial_id),
    )
    alike: dict[tuple[Any, ...], list[int]] = {}
    for trial in ended:
        alike.setdefault(_without_placement(trial), []).append(int(trial.trial_id))
    epochs = tuner.__dict__.get(_EPOCHS, {})
    return [_result(t, alike[_without_placement(t)], epochs.get(t.trial_id, {})) for t in ended]


def log_tuner(tuner: Any, tracking_uri: str | None = None) -> YourStudyRuns:
    """:func:`bnsearch.log_keras_tuner`: hooks the tuner's ``on_epoch_end``, ``on_trial_end``
    and ``on_search_end``."""
    runs = YourStudyRuns(tuner.project_name, tracking_uri, "keras_tuner")
    epochs: dict[str, dict[str, list[float]]] = tuner.__dict__.setdefault(_EPOCHS, {})
    epoch_end, trial_end, search_end = tuner.on_epoch_end, tuner.on_trial_end, tuner.on_search_end

    def on_epoch_end(trial: Any, model: Any, epoch: int, logs: Any = None) -> None:
        epoch_end(trial, model, epoch, logs)
        kept = epochs.setdefault(trial.trial_id, {})
        for name, value in (logs or {}).items():
            kept.setdefault(name, []).append(float(value))

    def on_trial_end(trial: Any) -> None:
        trial_end(trial)  # the oracle records its end (its status) first
        for result in tuner_results(tuner):
            if result.spec.number == int(trial.trial_id):
                runs.log(result)

    def on_search_end() -> None:
        search_end()
        runs.end(_paired(tuner))

    tuner.on_epoch_end, tuner.on_trial_end = on_epoch_end, on_trial_end
    tuner.on_search_end = on_search_end
    return runs


def trial_config(trial: Any) -> BNConfig:
    """A Keras Tuner trial's values as a BNConfig (Hyperband's ``tuner/*`` values left out)."""
    values = trial.hyperparameters.values
    return BNConfig(**{k: values[k] for k in BNConfig.field_names() if k in values})


def _without_placement(trial: Any) -> tuple[Any, ...]:
    values = trial.hyperparameters.values
    return tuple(sorted((k, repr(v)) for k, v in values.items() if k != "placement"))


def _result(trial: Any, alike: list[int], epochs: dict[str, list[float]]) -> TrialResult:
    """``alike``: the ids of the trials with its values but the placement, its own among them."""
    block = alike[0] if len(alike) > 1 else None
    spec = TrialSpec(int(trial.trial_id), trial_config(trial), seed=alike[0], block=block)
    history = {name: list(epochs[name]) for name in METRICS if name in epochs} or {
        name: [float(o.value[-1]) for o in trial.metrics.get_history(name)]
        for name in METRICS
        if trial.metrics.exists(name)
    }
    state = _STATES.get(trial.status, TrialState.FAILED)
    finals = history.get("val_loss", [])
    if state is TrialState.COMPLETE and finals and not math.isfinite(finals[-1]):
        state = TrialState.FAILED  # the loss ran away: by bnsearch's rule it loses its block
    said = getattr(trial, "message", None) or f"Keras Tuner ended it {trial.status}"
    reason = None if state is TrialState.COMPLETE else said
    return TrialResult(spec, state, history, fail_reason=reason)

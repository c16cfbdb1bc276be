"""Paired blocks and a verdict for a study that runs a person's own Optuna objective: the face
of :func:`bnsearch.paired_objective`, :func:`bnsearch.verdict` and :class:`MlflowCallback`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bnsearch.backends._your_runs import YourStudyRuns, paired_verdict
from bnsearch.stats import Verdict
from bnsearch.trial import BNConfig, SearchSpace, TrialResult, TrialSpec, TrialState, keys

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

#: Optuna's finished states as bnsearch's.
STATES = {"COMPLETE": TrialState.COMPLETE, "PRUNED": TrialState.PRUNED, "FAIL": TrialState.FAILED}


def paired_objective(
    fit: Callable[[BNConfig, int], float], space: SearchSpace | None = None
) -> Callable[[optuna.Trial], float]:
    """:func:`bnsearch.paired_objective`: a block's first trial enqueues its other placements."""
    space = space or SearchSpace()

    def objective(trial: optuna.Trial) -> float:
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


def study_verdict(
    study: optuna.Study, threshold: float | None = None, until: str = "settled"
) -> Verdict:
    """:func:`bnsearch.verdict` of an Optuna study (its trials with ``bnsearch.block``)."""
    fix = "wrap your training function with bnsearch.paired_objective(train) and optimize that."
    return paired_verdict(study.study_name, _paired(study), fix, threshold, until)


def _paired(study: optuna.Study) -> list[TrialResult]:
    return [r for trial in study.trials if (r := your_trial_result(trial)) is not None]


class MlflowCallback:
    """An Optuna callback that logs your study to MLflow as bnsearch logs its own.

    A parent run for the study (in the experiment named after it) and, nested under it, a
    finished child run per trial: its parameters, its per-epoch values (what your objective
    gave ``trial.report``, as ``val_loss`` by epoch), its final value, and an honest state
    (FINISHED, KILLED when pruned, FAILED). Use it as a context manager: on leaving, the
    parent run ends, with both answers when the trials form paired blocks
    (:func:`paired_objective`), and as KILLED or FAILED when the block raised.

    Args:
        tracking_uri: the MLflow store (``sqlite:///mlruns/mlflow.db`` by default, or
            ``MLFLOW_TRACKING_URI``).

    Examples:
        >>> import os, tempfile
        >>> import mlflow, optuna
        >>> import bnsearch
        >>> def train(config, seed):  # stands in for your model.fit
        ...     return {"none": 0.8, "before": 0.6, "after": 0.7}[config.placement]
        >>> uri = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "mlflow.db")
        >>> study = optuna.create_study(study_name="mine")
        >>> with bnsearch.MlflowCallback(uri) as callback:
        ...     study.optimize(bnsearch.paired_objective(train), n_trials=6,
        ...                    callbacks=[callback])
        >>> client = mlflow.MlflowClient(uri)
        >>> runs = client.search_runs([client.get_experiment_by_name("mine").experiment_id])
        >>> sorted(r.data.tags.get("mlflow.parentRunId") == callback.parent_run_id
        ...        for r in runs)
        [False, True, True, True, True, True, True]
    """

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.runs: YourStudyRuns | None = None
        self.study: Any = None

    @property
    def parent_run_id(self) -> str | None:
        """The study's parent run, once a trial was logged."""
        return self.runs.parent_run_id if self.runs is not None else None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.runs is None:
            self.runs = YourStudyRuns(study.study_name, self.tracking_uri, "optuna")
        self.study = study
        if (result := your_trial_result(trial, in_block_only=False)) is not None:
            self.runs.log(result)

    def __enter__(self) -> MlflowCallback:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        if self.runs is None:
            return
        if kind is not None:
            self.runs.end([], "KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED")
        else:
            self.runs.end(_paired(self.study))


def your_trial_result(trial: FrozenTrial, in_block_only: bool = True) -> TrialResult | None:
    """A finished trial of your own study as bnsearch's record: its value (and the values
    it reported per epoch) as ``val_loss``; None while it runs, or outside any block when
    ``in_block_only``."""
    block = trial.user_attrs.get(keys.BLOCK)
    if (block is None and in_block_only) or "placement" not in trial.params:
        return None
    if keys.PHASE in trial.user_attrs:  # bnsearch's own trial: its result is stored with it
        return None
    state = STATES.get(trial.state.name)
    if state is None:  # running or waiting
        return None
    config = BNConfig(**{k: trial.params[k] for k in BNConfig.field_names() if k in trial.params})
    seed = int(block) if block is not None else trial.number
    spec = TrialSpec(trial.number, config, seed=seed, block=None if block is None else seed)
    history = [float(trial.intermediate_values[step]) for step in sorted(trial.intermediate_values)]
    value = trial.value if state is TrialState.COMPLETE else None
    if value is not None and history[-1:] != [float(value)]:
        history.append(float(value))
    reason = "pruned by the study's pruner" if state is TrialState.PRUNED else None
    if state is TrialState.FAILED:
        # Optuna fails a trial whose objective returned NaN: the loss ran away, and by
        # bnsearch's rule such a trial loses its block; any other failure leaves it.
        said = str(trial.system_attrs.get("fail_reason", "")).lower()
        reason = "loss became nan" if "nan" in said else "the objective raised an exception"
    return TrialResult(spec, state, {"val_loss": history}, fail_reason=reason)

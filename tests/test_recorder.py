"""The trial recorder: one NaN rule, one failure format, pruning, for every engine."""

from __future__ import annotations

import math

from bnsearch.trial import BNConfig, TrialRecorder, TrialSpec, TrialState, failure_kind

SPEC = TrialSpec(0, BNConfig.thread(), seed=1, block=0)
GOOD = {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7}


def test_healthy_epochs_complete_with_every_metric_per_epoch():
    recorder = TrialRecorder(SPEC, "keras")
    assert not recorder.record_epoch(0, GOOD)
    assert not recorder.record_epoch(1, {**GOOD, "val_loss": 0.4})
    result = recorder.result()
    assert result.state is TrialState.COMPLETE and result.fail_reason is None
    assert result.history["val_loss"] == [0.6, 0.4] and result.value == 0.4
    assert result.engine == "keras"


def test_a_nan_validation_loss_fails_the_trial_and_keeps_that_epoch():
    recorder = TrialRecorder(SPEC, "population")
    recorder.record_epoch(0, GOOD)
    assert recorder.record_epoch(1, {**GOOD, "val_loss": math.nan})
    result = recorder.result()
    assert result.state is TrialState.FAILED
    assert result.fail_reason == "val_loss became nan at epoch 1"
    assert len(result.history["val_loss"]) == 2


def test_a_divergence_inside_an_epoch_fails_even_with_finite_averages():
    recorder = TrialRecorder(SPEC, "population")
    assert recorder.record_epoch(3, GOOD, diverged=True)
    assert recorder.result().fail_reason == "loss became non-finite during epoch 3"


def test_a_batch_loss_that_blows_up_fails_at_once_and_the_epoch_end_keeps_that_reason():
    recorder = TrialRecorder(SPEC, "keras")
    assert not recorder.record_batch_loss(2, 0.3)
    assert recorder.record_batch_loss(2, math.inf)
    recorder.record_epoch(2, {**GOOD, "loss": math.inf})
    assert recorder.result().fail_reason == "loss became inf during epoch 2"


def test_the_pruner_is_asked_after_healthy_epochs_only():
    asked = []

    def prune(epoch, metrics):
        asked.append(epoch)
        return epoch == 1

    recorder = TrialRecorder(SPEC, "keras", prune)
    recorder.record_epoch(0, GOOD)
    assert recorder.record_epoch(1, GOOD)
    assert recorder.result().state is TrialState.PRUNED
    assert recorder.result().fail_reason == "pruned after epoch 1"
    failing = TrialRecorder(SPEC, "keras", prune)
    failing.record_epoch(0, {**GOOD, "loss": math.nan})
    assert asked == [0, 1]


def test_an_exception_is_a_failure_with_its_type_and_first_line():
    recorder = TrialRecorder(SPEC, "keras")
    recorder.fail_with(ValueError("bad shape\nlong details"))
    assert recorder.result().fail_reason == "ValueError: bad shape"


def test_failure_kinds_group_reasons_across_epochs_and_engines():
    reasons = ["loss became nan at epoch 3", "loss became nan at epoch 7"]
    assert {failure_kind(r) for r in reasons} == {"loss became nan"}
    assert failure_kind("loss became non-finite during epoch 2") == "loss became non-finite"
    assert failure_kind(None) == "unknown"

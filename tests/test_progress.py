"""The progress line (issue #23): a count within each batch, which look (or the confirmation
round) it is, and an ETA for that batch by the batch's own pace, never for the run's cap."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from bnsearch.report import Progress
from bnsearch.trial import BNConfig, Phase, TrialResult, TrialSpec, TrialState

LINE = re.compile(
    r"^\[\s*(?P<done>\d+)/(?P<size>\d+)\] (?P<label>look (?P<look>\d+)|confirm)\s+"
    r"trial (?P<trial>\d+) .* elapsed \d:\d\d:\d\d  batch eta (?P<eta>\d:\d\d:\d\d)$"
)


def _result(number: int, value: float, phase: Phase = Phase.SEARCH) -> TrialResult:
    spec = TrialSpec(number, BNConfig(placement="before"), seed=number, block=0, phase=phase)
    history = {"loss": [value], "accuracy": [0.5], "val_loss": [value], "val_accuracy": [0.5]}
    return TrialResult(spec=spec, state=TrialState.COMPLETE, history=history)


def _seconds(clock: str) -> int:
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return hours * 3600 + minutes * 60 + seconds


TRAINING = re.compile(
    r"^\[(?P<label>look \d+|confirm): (?P<size>\d+) trials\] training (?P<percent>\d+) %  "
    r"elapsed \d:\d\d:\d\d  batch eta (?P<eta>\d:\d\d:\d\d)$"
)


def test_the_eta_is_the_batchs_own_pace_and_never_the_cap(monkeypatch: pytest.MonkeyPatch):
    now = [100.0]
    monkeypatch.setattr("bnsearch.report._summary.time.monotonic", lambda: now[0])
    out = io.StringIO()
    progress = Progress(273, stream=out)  # the run's cap: 273 trials
    progress.on_batch(Phase.SEARCH, 1, 4, epochs=1)
    for _ in range(4):
        progress.on_epoch()
    for number in range(4):
        now[0] += 2.0  # each result of the batch takes 2 s to tell
        progress(_result(number, 0.5 - number / 100))
    progress.on_batch(Phase.SEARCH, 2, 2, epochs=1)
    now[0] += 60.0  # the next batch trains for a minute
    progress.on_epoch()
    progress.on_epoch()
    now[0] += 1.0
    progress(_result(4, 0.6))
    progress.on_batch(Phase.CONFIRM, 1, 3, epochs=1)
    for _ in range(3):
        progress.on_epoch()
    now[0] += 3.0
    progress(_result(5, 0.6, Phase.CONFIRM))
    lines = out.getvalue().splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(m["done"], m["size"], m["label"]) for m in parsed] == [
        ("1", "4", "look 1"), ("2", "4", "look 1"), ("3", "4", "look 1"), ("4", "4", "look 1"),
        ("1", "2", "look 2"), ("1", "3", "confirm"),
    ]  # fmt: skip
    # 2 s a result from the end of training: 3, 2, 1 and 0 results to go; then 1 s and
    # 3 s a result (the minute of training is not the telling's pace).
    assert [_seconds(m["eta"]) for m in parsed] == [6, 4, 2, 0, 1, 6]
    assert "273" not in out.getvalue()


def test_training_lines_time_the_batch_from_its_second_epoch(monkeypatch: pytest.MonkeyPatch):
    """A population's epochs end together, after a first epoch that also compiled the
    graph: the ETA is timed from the end of that first epoch, so it is right from the
    first line on, and a quarter reached before any pace is known prints nothing."""
    now = [0.0]
    monkeypatch.setattr("bnsearch.report._summary.time.monotonic", lambda: now[0])
    out = io.StringIO()
    progress = Progress(273, stream=out)
    progress.on_batch(Phase.SEARCH, 1, 24, epochs=20)
    epoch_ends = []
    for epoch in range(20):
        now[0] += 10.0 if epoch == 0 else 0.5  # 10 s of compiling, then 0.5 s an epoch
        epoch_ends.append(now[0])
        for _ in range(24):
            progress.on_epoch()
    parsed = [TRAINING.match(line) for line in out.getvalue().splitlines()]
    assert all(parsed) and [m["percent"] for m in parsed] == ["25", "50", "75"], parsed
    # Printed at the ends of epochs 5, 10 and 15; the batch's training ends at epoch 20.
    real = [epoch_ends[-1] - epoch_ends[k] for k in (4, 9, 14)]
    assert [_seconds(m["eta"]) for m in parsed] == [round(r) for r in real]
    assert all(m["label"] == "look 1" and m["size"] == "24" for m in parsed)


def test_one_epoch_batches_print_no_training_line():
    out = io.StringIO()
    progress = Progress(3, stream=out)
    progress.on_batch(Phase.SEARCH, 1, 3, epochs=1)
    for _ in range(3):
        progress.on_epoch()
    assert out.getvalue() == ""


def test_without_batches_the_line_counts_the_runs_plan():
    """Keras Tuner's own search (Hyperband, grid) tells no batches."""
    out = io.StringIO()
    progress = Progress(5, stream=out)
    progress(_result(0, 0.5))
    assert out.getvalue().startswith("[1/5] trial 0 ") and " eta " in out.getvalue()


@pytest.mark.trains
def test_a_real_study_counts_each_look_and_the_confirmation_round_on_its_own(
    cli, tiny_csv: Path, tmp_path: Path
):
    result = cli(
        "study", "--data", str(tiny_csv), "--target", "label", "--epochs", "2",
        "--hidden-units", "8,8", "--population", "6", "--n-trials", "12", "--until", "budget",
        "--confirm-seeds", "2", "--study-name", "progress",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [
        line
        for line in result.stdout.splitlines()
        if line.startswith("[") and " training " not in line
    ]
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert all(len(line) <= 100 and line.isascii() for line in lines), lines
    # Two looks of 6 trials (2 blocks each), then a round of 2 seeds x 3 placements.
    assert [(int(m["done"]), int(m["size"]), m["label"]) for m in parsed] == [
        *[(k, 6, "look 1") for k in range(1, 7)],
        *[(k, 6, "look 2") for k in range(1, 7)],
        *[(k, 6, "confirm") for k in range(1, 7)],
    ]
    # Each batch's last line owes nothing more: the ETA is the batch's, not the run's.
    for match in parsed:
        if match["done"] == match["size"]:
            assert match["eta"] == "0:00:00", match.string

"""Both questions in real tiny studies (``python -m bnsearch study`` in-process): one where
BN does not help, one where BN helps while placement cannot matter; the headline, the
parent run's name, tags and metrics, and optuna-dashboard's study attributes carry both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient


def _scaled_csv(folder: Path, scale: float) -> Path:
    """The tiny synthetic problem, standardized and then multiplied by ``scale``."""
    from bnsearch.data import make_synthetic

    data = make_synthetic(320, seed=3)
    x = (data.x - data.x.mean(0)) / data.x.std(0) * scale
    path = folder / f"x{scale:g}.csv"
    header = ",".join([*data.feature_names, "label"])
    np.savetxt(path, np.column_stack([x, data.y]), delimiter=",", header=header,
               comments="", fmt="%.6g")  # fmt: skip
    return path


def _parent(folder: Path, name: str):
    client = MlflowClient(f"sqlite:///{folder}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name(name)
    (run,) = client.search_runs([experiment.experiment_id], "tags.`bnsearch.kind` = 'study'")
    return run


@pytest.mark.trains
def test_a_study_where_bn_does_not_help_never_says_it_helps(tiny_csv, tmp_path, cli):
    """Batches of two make BN's batch statistics noise: `none` wins every block."""
    result = cli(
        "study", "--data", str(tiny_csv), "--target", "label", "--epochs", "2",
        "--hidden-units", "8", "--batch-size", "2", "--confirm-seeds", "0", "--n-trials",
        "24", "--question", "bn", "--study-name", "nobn", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "BN helps" not in result.stdout
    (headline,) = [line for line in result.stdout.splitlines() if line.startswith("Verdict: ")]
    assert "BN does not help (none is as good or better)" in headline
    assert "bnsearch: settled after " in result.stdout
    assert " blocks: BN does not help (none is as good or better)" in result.stdout
    run = _parent(tmp_path, "nobn")
    assert run.data.tags["bnsearch.verdict_bn"] == "no-help"
    assert run.data.tags["bnsearch.verdict_bn_helps"] == ""
    assert run.data.tags["bnsearch.verdict_text"].startswith("Does BN help? BN does not help")
    assert run.info.run_name.startswith("BN does not help · ")
    assert run.info.run_name.split(" · ")[-1].startswith("study-")
    for placement in ("before", "after"):  # each BN placement against none, worse
        assert run.data.metrics[f"verdict.bn.{placement}.cs_low"] > 0.01
    study = optuna.load_study(study_name="nobn", storage=f"sqlite:///{tmp_path}/mlruns/optuna.db")
    assert study.user_attrs["bnsearch.verdict_bn"] == "no-help"
    assert study.user_attrs["bnsearch.verdict_headline"].startswith("BN does not help")


@pytest.mark.trains
def test_a_study_where_bn_helps_and_placement_cannot_matter(tmp_path, cli):
    """With a linear activation `before` and `after` compute the same function, while the
    features' scale (×30) leaves `none` far behind: both BN placements beat `none` and the
    placement has no effect, settled at the first look."""
    data = _scaled_csv(tmp_path, 30)
    (tmp_path / "lin.toml").write_text(
        f'name = "lin"\ndata = "{data}"\ntarget = "label"\nconfirm_seeds = 0\n'
        'n_trials = 60\n[network]\nepochs = 2\nhidden_units = [8]\nactivation = "linear"\n'
        "[space]\nlearning_rate = 0.01\n"
    )
    result = cli("study", "lin.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Verdict: "))
    assert lines[at] == (
        "Verdict: BN helps (before and after beat none); no placement effect beyond the threshold"
    )
    assert lines[at + 1].startswith("  settled after 8 blocks;")
    run = _parent(tmp_path, "lin")
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["bnsearch.verdict_bn"] == "helps" and tags["bnsearch.verdict"] == "no-effect"
    assert tags["bnsearch.verdict_bn_helps"] == "before,after"
    assert run.info.run_name.startswith("BN helps · placement: no effect +0.00 [+0.00, +0.00]")
    assert " · 8 blocks · study-" in run.info.run_name
    assert metrics["verdict.n_blocks"] == 8
    assert (
        metrics["verdict.bn.before.cs_high"] < -0.01 and metrics["verdict.bn.after.cs_high"] < -0.01
    )
    assert tags["mlflow.note.content"].startswith(f"**{tags['bnsearch.verdict_text']}**")
    assert "Does BN help? **BN helps" in tags["mlflow.note.content"]

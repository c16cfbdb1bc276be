"""Honest on every dataset (issue #36, the data part): a file sorted by its target is warned
of before training and `--shuffle` (study file `shuffle`) fixes it; NaN names its columns
and rows; a regression's header states the task and the target's mean and sd, and an
unscaled target gets a notice."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnsearch.data import load_dataset

QUICK = ("--confirm-seeds", "0", "--until", "budget")
SPECIES = ("Adelie", "Gentoo", "Chinstrap")


def _sorted_species(folder: Path) -> Path:
    """300 penguin-like rows grouped by species (as the data set is published): the last
    20 %, the validation rows, are all Chinstrap; 4 informative features."""
    rng = np.random.default_rng(0)
    labels = np.repeat(SPECIES, [130, 110, 60])
    centers = {"Adelie": [0, 0, 0, 0], "Gentoo": [3, 0, 3, 0], "Chinstrap": [0, 3, 0, 3]}
    x = np.array([centers[label] for label in labels]) + rng.normal(size=(300, 4))
    frame = pd.DataFrame(x, columns=["bill_length", "bill_depth", "flipper", "mass"])
    path = folder / "penguins.csv"
    frame.assign(species=labels).to_csv(path, index=False)
    return path


def _study(cli, folder: Path, *args: str):
    return cli(
        "study", *args, "--storage", f"sqlite:///{folder / 'optuna.db'}",
        "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}", cwd=folder,
    )  # fmt: skip


def _warnings(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("bnsearch: warning:")]


def _fingerprint(stdout: str) -> str:
    return re.search(r"fingerprint ([0-9a-f]{16})\)", stdout).group(1)


def _best_val_acc(stdout: str) -> float:
    """The best final validation accuracy over the placements, from the summary table."""
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if "best val_acc" in line)
    rows = [line.split() for line in lines[head + 1 : head + 4]]
    # placement, complete, pruned, failed, best val_loss, median, best val_acc, median
    assert all(len(row) == 8 for row in rows), lines[head : head + 4]
    return max(float(row[6]) for row in rows)


@pytest.mark.trains
def test_a_class_sorted_csv_is_warned_of_naming_the_class_and_the_fix(tmp_path, cli):
    _sorted_species(tmp_path)
    result = _study(cli, tmp_path, "--data", "penguins.csv", "--target", "species",
                    "--n-trials", "3", "--epochs", "1", *QUICK)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (warning,) = _warnings(result.stdout)
    assert "Chinstrap, which the training rows lack" in warning
    assert "lack classes Adelie and Gentoo" in warning
    assert "--shuffle" in warning and "`shuffle = true`" in warning
    assert result.stdout.index(warning) < result.stdout.index("trial 0")
    assert _best_val_acc(result.stdout) < 0.5  # validated on a class never trained on
    data = load_dataset(str(tmp_path / "penguins.csv"), "species")
    assert data.split_warning == warning
    assert data.degenerate_validation == "the validation rows hold one class only (Chinstrap)"
    # ...so the verdict ranks nothing and says why
    verdict = result.stdout.split("Verdict: ")[1]
    assert verdict.startswith("neither question is answered")
    assert f"{data.degenerate_validation}." in verdict and "better" not in verdict
    # the report, rebuilt from the store without the data, withholds the ranking too
    report = cli(
        "report", "--study-name", "bnsearch-penguins",
        "--storage", f"sqlite:///{tmp_path / 'optuna.db'}",
        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    rebuilt = report.stdout.split("Verdict: ")[1]
    assert rebuilt.startswith("neither question is answered")
    assert f"{data.degenerate_validation}." in rebuilt and "better" not in rebuilt


@pytest.mark.trains
def test_shuffle_trains_a_useful_model_on_the_sorted_csv_and_changes_the_fingerprint(tmp_path, cli):
    _sorted_species(tmp_path)
    args = ("--data", "penguins.csv", "--target", "species", "--epochs", "5", *QUICK)
    kept = _study(cli, tmp_path, *args, "--n-trials", "0", "--study-name", "kept")
    shuffled = _study(cli, tmp_path, *args, "--n-trials", "3", "--shuffle")
    assert shuffled.returncode == 0, shuffled.stderr
    assert _warnings(shuffled.stdout) == []
    assert _best_val_acc(shuffled.stdout) > 0.8  # chance is 1/3, the largest class 43 %
    assert _fingerprint(shuffled.stdout) != _fingerprint(kept.stdout)
    again = _study(cli, tmp_path, *args, "--n-trials", "0", "--shuffle", "--seed", "1",
                   "--study-name", "seed1")  # fmt: skip
    assert _fingerprint(again.stdout) not in (
        _fingerprint(shuffled.stdout),
        _fingerprint(kept.stdout),
    )


def test_shuffle_in_a_study_file_works_as_the_flag_does(tmp_path, cli):
    _sorted_species(tmp_path)
    (tmp_path / "sorted.toml").write_text(
        'data = "penguins.csv"\ntarget = "species"\nshuffle = true\nconfirm_seeds = 0\n'
    )
    from_file = _study(cli, tmp_path, "sorted.toml", "--n-trials", "0")
    from_flag = _study(cli, tmp_path, "--data", "penguins.csv", "--target", "species",
                       "--shuffle", "--n-trials", "0", "--study-name", "flag")  # fmt: skip
    assert from_file.returncode == from_flag.returncode == 0, from_file.stderr
    assert _warnings(from_file.stdout) == _warnings(from_flag.stdout) == []
    assert _fingerprint(from_file.stdout) == _fingerprint(from_flag.stdout)
    (tmp_path / "bad.toml").write_text('data = "penguins.csv"\nshuffle = "yes"\n')
    refused = _study(cli, tmp_path, "bad.toml", "--n-trials", "0")
    assert refused.returncode == 2 and "`shuffle` must be" in refused.stderr


def test_nan_in_two_columns_is_one_line_naming_the_columns_rows_and_fix(tmp_path, cli):
    path = _sorted_species(tmp_path)
    frame = pd.read_csv(path)
    frame.loc[[3, 17], "bill_depth"] = np.nan
    frame.loc[[17, 250], "mass"] = np.inf
    frame.to_csv(tmp_path / "holes.csv", index=False)
    result = _study(cli, tmp_path, "--data", "holes.csv", "--target", "species")
    assert result.returncode == 2
    (error,) = result.stderr.strip().splitlines()
    assert error.startswith("bnsearch: error: holes.csv: features contain NaN or inf")
    assert "columns bill_depth and mass" in error and "in 3 of 300 rows" in error
    assert "data rows 4, 18 and 251" in error and "drop or fill those rows" in error


def _regression(folder: Path, name: str, order: str = "random") -> tuple[Path, np.ndarray]:
    """300 rows, 3 features and a target of mean about 50 and sd about 10."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    y = 50 + 8 * x[:, 0] - 5 * x[:, 1] + rng.normal(size=300)
    if order == "sorted":
        x, y = x[np.argsort(y)], np.sort(y)
    path = folder / name
    pd.DataFrame(x, columns=["a", "b", "c"]).assign(target=y).to_csv(path, index=False)
    return path, y


def test_a_regression_header_states_the_task_and_target_and_an_unscaled_target_is_noticed(
    tmp_path, cli
):
    _, y = _regression(tmp_path, "reg.csv")
    raw = _study(cli, tmp_path, "--data", "reg.csv", "--target", "target", "--n-trials", "0")
    assert raw.returncode == 0, raw.stderr
    header = raw.stdout.splitlines()[0]
    mean, sd = re.search(r"regression: target mean (\S+), sd (\S+), fingerprint", header).groups()
    assert abs(float(mean) - y.mean()) < 0.01 * y.mean() and abs(float(sd) - y.std()) < 0.1
    assert "classes" not in header
    (notice,) = [line for line in raw.stdout.splitlines() if "regression target" in line]
    assert "without --standardize" in notice and "pass --standardize to scale it" in notice
    assert "the target of reg.csv holds fractional numbers" in raw.stdout
    assert _warnings(raw.stdout) == []
    # The header and its notices come before any training: a study of no trials shows them.
    args = ("--data", "reg.csv", "--target", "target", "--standardize")
    scaled = _study(cli, tmp_path, *args, "--n-trials", "0", "--study-name", "scaled")
    assert scaled.returncode == 0, scaled.stderr
    assert f"target mean {mean}, sd {sd}" in scaled.stdout  # the raw target's, as the file has it
    assert "regression target" not in scaled.stdout


def test_a_regression_sorted_by_its_target_is_warned_of(tmp_path, cli):
    _regression(tmp_path, "rising.csv", order="sorted")
    result = _study(cli, tmp_path, "--data", "rising.csv", "--target", "target", "--standardize",
                    "--n-trials", "0")  # fmt: skip
    (warning,) = _warnings(result.stdout)
    assert "hold targets outside the training rows' range" in warning
    assert "100 % of validation targets beyond the training minimum or maximum" in warning
    assert "--shuffle" in warning
    fixed = _study(cli, tmp_path, "--data", "rising.csv", "--target", "target", "--standardize",
                   "--shuffle", "--n-trials", "0", "--study-name", "fixed")  # fmt: skip
    assert _warnings(fixed.stdout) == []

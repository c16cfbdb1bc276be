from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    """320 rows of the synthetic problem, standardized, written as a CSV with a header."""
    from bnsearch.data import make_synthetic

    data = make_synthetic(320, seed=3)
    x = (data.x - data.x.mean(0)) / data.x.std(0)
    path = tmp_path / "tiny.csv"
    header = ",".join([*data.feature_names, "label"])
    rows = np.column_stack([x, data.y])
    np.savetxt(path, rows, delimiter=",", header=header, comments="", fmt="%.6g")
    return path


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, str]:
    """A fresh Optuna storage and MLflow store in a temporary folder."""
    return {
        "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }

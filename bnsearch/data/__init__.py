"""Datasets: built-in and from files, the task, the split rule and the fingerprint."""

from __future__ import annotations

from bnsearch.data._dataset import (
    ACCEPTED,
    TASKS,
    Dataset,
    dataset_name,
    load_dataset,
    make_synthetic,
    split_index,
)

__all__ = [
    "ACCEPTED",
    "TASKS",
    "Dataset",
    "dataset_name",
    "load_dataset",
    "make_synthetic",
    "split_index",
]

"""Datasets: built-in and from files, the task, the split rule and the fingerprint."""

from __future__ import annotations

from bnsearch.data._dataset import (
    ACCEPTED,
    Dataset,
    dataset_name,
    load_dataset,
    make_synthetic,
    split_index,
)

__all__ = [
    "ACCEPTED",
    "Dataset",
    "dataset_name",
    "load_dataset",
    "make_synthetic",
    "split_index",
]

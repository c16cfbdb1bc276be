"""Datasets: built-in and from files, the task, the split rule and the fingerprint."""

from __future__ import annotations

from bnsearch.data._dataset import (
    Dataset,
    load_dataset,
    make_synthetic,
    split_index,
)

__all__ = [
    "Dataset",
    "load_dataset",
    "make_synthetic",
    "split_index",
]

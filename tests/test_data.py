from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bnsearch.data import load_dataset, make_synthetic, split_index
from bnsearch.errors import DataError


def test_synthetic_default_is_deterministic_with_14_raw_features():
    a, b = make_synthetic(1000, seed=0), make_synthetic(1000, seed=0)
    assert a.x.shape == (1000, 14) and a.n_classes == 2
    assert a.fingerprint == b.fingerprint
    assert make_synthetic(1000, seed=1).fingerprint != a.fingerprint
    scales = a.x.std(axis=0)
    assert scales.max() / scales.min() > 1e4  # raw tabular scales, like ages and money
    assert 0.3 < a.y.mean() < 0.7


def test_validation_rows_are_the_last_rows_like_keras():
    data = make_synthetic(1001)
    x_train, y_train, x_val, y_val = data.split(0.2)
    assert len(x_train) == split_index(1001, 0.2) == 800
    np.testing.assert_array_equal(x_val, data.x[800:])
    assert y_train.shape == (800, 2)


def test_standardize_uses_training_rows_only():
    data = load_dataset(standardize=True, n_rows=1000)
    train = data.x[: split_index(1000, 0.2)]
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-3)
    assert data.fingerprint != load_dataset(n_rows=1000).fingerprint


def test_csv_with_string_labels_loads(tmp_path: Path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n")
    data = load_dataset(str(path), "label")
    assert data.class_names == ("cat", "dog")
    assert data.y.tolist() == [0, 1, 0]
    assert data.x.dtype == np.float32


def test_npz_and_parquet_load(tmp_path: Path):
    import pandas as pd

    np.savez(tmp_path / "d.npz", X=np.random.rand(20, 3), y=np.arange(20) % 2)
    assert load_dataset(str(tmp_path / "d.npz")).x.shape == (20, 3)
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "t": [0, 1, 0]}).to_parquet(tmp_path / "d.parquet")
    assert load_dataset(str(tmp_path / "d.parquet"), "t").n_classes == 2


def test_sklearn_datasets_load():
    data = load_dataset("sklearn:breast_cancer")
    assert data.x.shape == (569, 30) and data.n_classes == 2


@pytest.mark.parametrize(
    ("content", "target", "words"),
    [
        (None, "y", ["does not exist"]),
        ("", "y", ["empty"]),
        ("1,2,3\n4,5,6\n", "y", ["header"]),
        ("a,b,y\n1,2,0\n3,4,1\n", "label", ["'label' not found", "a, b, y"]),
        ("a,b,y\nx,2,0\nz,4,1\n", "y", ["non-numeric", "a"]),
        ("a,b,y\n1,,0\n3,4,1\n", "y", ["NaN"]),
        ("a,b,y\n1,2,0\n3,4,0\n", "y", ["single class"]),
        ("a,b,y\n1,2,0.5\n3,4,1\n", "y", ["fractional"]),
    ],
)
def test_bad_csv_gets_a_clear_error(tmp_path: Path, content, target, words):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as caught:
        load_dataset(str(path), target)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_unknown_sources_are_named(tmp_path: Path):
    (tmp_path / "d.json").write_text("{}")
    with pytest.raises(DataError, match="unknown extension"):
        load_dataset(str(tmp_path / "d.json"))
    with pytest.raises(DataError, match="sklearn:breast_cancer"):
        load_dataset("sklearn:nope")


def test_too_few_rows_for_split_and_batch():
    data = make_synthetic(10)
    with pytest.raises(DataError, match="too few"):
        data.check_trainable(0.2, 16)


def test_a_csv_naming_the_label_column_twice_is_refused(tmp_path: Path):
    path = tmp_path / "dup.csv"
    path.write_text("y,a,y\n0,1.5,0\n1,2.5,1\n")
    with pytest.raises(DataError, match="'y' appear more than once"):
        load_dataset(str(path), "y")


def test_a_semicolon_separated_csv_gets_a_hint_about_the_separator(tmp_path: Path):
    path = tmp_path / "semi.csv"
    path.write_text("a;b;y\n1;2;0\n3;4;1\n")
    with pytest.raises(DataError, match="separated by ';'"):
        load_dataset(str(path), "y")


def test_one_hot_labels_in_an_npz_are_decoded_to_one_label_per_row(tmp_path: Path):
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    labels = np.array([0, 1, 2, 1, 0, 2])
    np.savez(tmp_path / "hot.npz", X=x, y=np.eye(3)[labels])
    data = load_dataset(str(tmp_path / "hot.npz"))
    assert data.n_rows == 6 and data.n_classes == 3
    assert data.y.tolist() == labels.tolist()


@pytest.mark.parametrize(
    ("x", "y", "words"),
    [
        (np.arange(6.0), np.array([0, 1, 0, 1, 0, 1]), "reshape(-1, 1)"),
        (np.ones((4, 2)), np.full((4, 3), 0.5), "one label per row"),
    ],
)
def test_an_npz_with_a_flat_x_or_a_table_of_y_is_refused(tmp_path: Path, x, y, words):
    np.savez(tmp_path / "bad.npz", X=x, y=y)
    with pytest.raises(DataError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(str(tmp_path / "bad.npz"))

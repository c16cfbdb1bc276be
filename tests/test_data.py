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
        ("1,nan,1_000\n4,5,6\n", "y", ["header"]),  # numbers as float() reads them
        ("a,b,y\n1,2,0\n3,4,1\n", "label", ["'label' not found", "a, b, y"]),
        ("a,b,y\nx,2,0\nz,4,1\n", "y", ["non-numeric", "a"]),
        ("a,b,y\n1,,0\n3,4,1\n", "y", ["NaN"]),
        ("a,b,y\n1,2,0\n3,4,0\n", "y", ["single class"]),
        ("a,b,y\n1,2,0.5\n3,4,1\n", "y", ["fractional", "--task regression"]),
    ],
)
def test_bad_csv_gets_a_clear_error(tmp_path: Path, content, target, words):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as caught:
        load_dataset(str(path), target, task="classification")
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


def _frame(n: int = 60):
    """A table as a user has it: float and integer features, string labels."""
    import pandas as pd

    rng = np.random.default_rng(5)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.random(n) * 1e5,
            "score": rng.standard_normal(n),
            "label": rng.choice(["churn", "stay"], n),
        }
    )


def _write(frame, path: Path) -> Path:
    """``frame`` saved at ``path`` the way pandas writes that kind of file."""
    name = path.name.lower()
    if name.endswith(".feather"):
        frame.to_feather(path)
    elif name.endswith(".parquet"):
        frame.to_parquet(path)
    elif ".tsv" in name:
        frame.to_csv(path, sep="\t", index=False)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "name",
    [
        "table.csv.gz", "table.csv.bz2", "table.csv.zip", "table.csv.xz", "table.tsv",
        "table.tsv.gz", "table.feather", "table.parquet", "TABLE.CSV.GZ",
    ],
)  # fmt: skip
def test_every_format_pandas_reads_loads_the_same_table_as_the_csv(tmp_path: Path, name: str):
    frame = _frame()
    csv = load_dataset(str(_write(frame, tmp_path / "table.csv")), "label")
    data = load_dataset(str(_write(frame, tmp_path / name)), "label")
    np.testing.assert_array_equal(data.x, csv.x)
    np.testing.assert_array_equal(data.y, csv.y)
    assert data.class_names == csv.class_names == ("churn", "stay")
    assert data.feature_names == csv.feature_names == ("age", "income", "score")
    assert data.name.lower() == "table"  # the study name does not change with the format
    # The fingerprint hashes the content, not the file: converting a study's data file or
    # compressing it does not make the study "changed".
    assert data.fingerprint == csv.fingerprint


def test_a_folder_of_parquet_files_loads_as_one_table_in_file_order(tmp_path: Path):
    frame = _frame(90)
    folder = tmp_path / "table.parquet"  # as Spark names such a folder
    folder.mkdir()
    for i, start in enumerate(range(0, 90, 30)):
        frame.iloc[start : start + 30].to_parquet(folder / f"part-{i:05d}.parquet", index=False)
    (folder / "_SUCCESS").write_text("")  # Spark's marker: not data
    data = load_dataset(str(folder), "label")
    csv = load_dataset(str(_write(frame, tmp_path / "table.csv")), "label")
    assert data.n_rows == 90 and data.name == "table"
    np.testing.assert_array_equal(data.x, csv.x)  # the rows in order: validation rows last
    assert data.fingerprint == csv.fingerprint


@pytest.mark.parametrize("name", ["d.json", "d.csv.zst", "d.xlsx", "noextension"])
def test_a_file_of_another_kind_is_refused_with_what_is_accepted(tmp_path: Path, name: str):
    (tmp_path / name).write_text("{}")
    with pytest.raises(DataError) as caught:
        load_dataset(str(tmp_path / name), "label")
    message = str(caught.value)
    assert "unknown extension" in message and "\n" not in message
    for accepted in (".csv", ".tsv", ".gz", ".bz2", ".zip", ".xz", ".parquet", ".feather", ".npz"):
        assert accepted in message
    assert "folder of .parquet files" in message


def test_a_folder_without_parquet_files_is_refused_with_what_is_accepted(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="folder without .parquet files.*\\.csv"):
        load_dataset(str(tmp_path / "data"), "label")


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("d.tsv", "a,b,y\n1,2,0\n3,4,1\n", ["separated by ','", "name it .csv"]),
        ("d.csv", "a\tb\ty\n1\t2\t0\n3\t4\t1\n", ["separated by tabs", "name it .tsv"]),
        ("d.tsv", "y\ta\ty\n0\t1\t0\n1\t2\t1\n", ["'y' appear more than once"]),
    ],
)
def test_a_delimited_file_with_the_wrong_separator_or_a_repeated_name_is_refused(
    tmp_path: Path, name: str, content: str, words: list[str]
):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError) as caught:
        load_dataset(str(tmp_path / name), "y")
    for word in words:
        assert word in str(caught.value)


def test_a_compressed_file_that_is_empty_or_damaged_is_a_data_error(tmp_path: Path):
    import gzip

    (tmp_path / "empty.csv.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match="empty"):
        load_dataset(str(tmp_path / "empty.csv.gz"), "y")
    (tmp_path / "broken.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot be read"):
        load_dataset(str(tmp_path / "broken.csv.gz"), "y")
    (tmp_path / "broken.feather").write_bytes(b"not feather")
    with pytest.raises(DataError, match="cannot be read"):
        load_dataset(str(tmp_path / "broken.feather"), "y")


@pytest.mark.parametrize(("label", "shown"), [("1", "(1)"), ("cat", "(cat)"), ("2.0", "(2)")])
def test_a_single_class_is_named_by_its_plain_value(tmp_path: Path, label: str, shown: str):
    path = tmp_path / "one.csv"
    path.write_text(f"a,b,y\n1,2,{label}\n3,4,{label}\n")
    with pytest.raises(DataError) as caught:
        load_dataset(str(path), "y")
    message = str(caught.value)
    assert f"labels hold a single class {shown}; need at least 2." in message
    assert "np." not in message and "'" not in message


@pytest.mark.parametrize(
    ("column", "task"),
    [
        ("0.5,1,0", "regression"),  # a fractional value
        ("0.0,1.0,0", "classification"),  # whole numbers in a float column: classes
        ("0,1,2", "classification"),  # integers are always classes
        ("a,b,a", "classification"),
    ],
)
def test_auto_task_follows_the_target_column(tmp_path: Path, column: str, task: str):
    path = tmp_path / "t.csv"
    values = column.split(",")
    path.write_text("x,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values * 4)))
    data = load_dataset(str(path), "y")
    assert data.task == task
    assert bool(data.task_note) is (task == "regression")


def test_many_distinct_whole_numbers_in_a_float_column_are_a_regression(tmp_path: Path):
    path = tmp_path / "t.csv"
    path.write_text("x,y\n" + "".join(f"{i},{float(i * 7)}\n" for i in range(30)))
    data = load_dataset(str(path), "y")
    assert data.task == "regression" and "30 distinct real values" in data.task_note
    assert load_dataset(str(path), "y", task="classification").n_classes == 30


def test_a_regression_target_must_be_numbers_and_synthetic_data_classifies(tmp_path: Path):
    path = tmp_path / "t.csv"
    path.write_text("x,y\n1,a\n2,b\n")
    with pytest.raises(DataError, match="a regression needs a numeric target"):
        load_dataset(str(path), "y", task="regression")
    with pytest.raises(DataError, match="classification problem"):
        load_dataset("synthetic", task="regression")
    with pytest.raises(DataError, match="unknown task"):
        load_dataset("synthetic", task="guess")


def test_a_regression_keeps_its_fingerprint_apart_and_classes_keep_theirs():
    classes = load_dataset("sklearn:iris")
    assert classes.fingerprint == load_dataset("sklearn:iris", task="classification").fingerprint
    diabetes = load_dataset("sklearn:diabetes")
    assert diabetes.task == "regression" and diabetes.n_classes == 1 and diabetes.x.shape == (
        442, 10,
    )  # fmt: skip
    as_classes = load_dataset("sklearn:diabetes", task="classification")
    assert as_classes.fingerprint != diabetes.fingerprint

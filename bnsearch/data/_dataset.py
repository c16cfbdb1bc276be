"""Datasets: the built-in synthetic problem, files, scikit-learn's bundled sets and OpenML
(docs/guides/data.md); every loader keeps the row order (validation rows are the last)."""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bnsearch.data._split import check_classes, check_target
from bnsearch.errors import DataError, error_line, name_list

DEFAULT_DATA = "synthetic"
#: What ``--task`` takes: ``auto`` decides from the target.
TASKS = ("auto", "classification", "regression")
#: Under ``auto``, a floating-point target with more distinct values than this is a regression.
MAX_AUTO_CLASSES = 20
#: A regression target with |mean| above this, or sd above it or below its inverse, is unscaled.
TARGET_SCALE = 3.0


def split_index(n_rows: int, validation_split: float) -> int:
    """Index of the first validation row, as ``keras.Model.fit(validation_split=...)`` does."""
    return int(math.floor(n_rows * (1.0 - validation_split)))


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features ``x`` (float32, ``[rows, features]`` or ``[rows, h, w, c]``) and labels ``y``.

    :func:`load_dataset` makes one from a file, a scikit-learn or OpenML data set or the
    built-in data; build one yourself from arrays to train on data already in memory. Its
    :attr:`fingerprint` identifies the content, so a study can tell whether its data changed.

    Attributes:
        name: the data set's name (``synthetic``, ``breast_cancer``, a file's stem).
        x: the features, float32, one row per sample.
        y: the labels: class indices ``0..n_classes-1``, or a regression's real-valued target.
        class_names: the class of each index (empty for a regression).
        feature_names: the feature columns' names, where the source has them.
        source: where the data came from (a path, ``sklearn:NAME``, the built-in settings).
        standardized: whether the features were scaled by the training rows' mean and sd.
        task: ``classification`` or ``regression``.
        task_note: how ``task = "auto"`` chose the task, in one line (empty if it was given).
        shuffle_seed: the seed of the shuffle before the split (None: the source's order).
        target_scale: a standardised regression's raw training-target ``(mean, sd)``.
        split_warning: one line when the validation rows (the last ones) do not represent
            the training rows (None when fine or not checked; :meth:`check_split` sets it).
        degenerate_validation: why the validation rows cannot rank placements, as a short
            phrase (None otherwise); a study gives no ranking then.

    Examples:
        >>> import numpy as np
        >>> import bnsearch
        >>> data = bnsearch.Dataset(name="toy", x=np.zeros((10, 3), np.float32),
        ...     y=np.array([0, 1] * 5), class_names=("no", "yes"))
        >>> data.n_rows, data.n_features, data.n_classes
        (10, 3, 2)
        >>> x_train, y_train, x_val, y_val = data.split(validation_split=0.2)
        >>> x_train.shape, y_val.shape
        ((8, 3), (2, 2))
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...] = ()
    source: str = ""
    standardized: bool = False
    task: str = "classification"
    task_note: str = ""
    shuffle_seed: int | None = None
    target_scale: tuple[float, float] | None = None
    split_warning: str | None = None
    degenerate_validation: str | None = None

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_features(self) -> int:
        return int(np.prod(self.x.shape[1:]))

    @property
    def regression(self) -> bool:
        return self.task == "regression"

    @property
    def n_classes(self) -> int:
        """The number of classes; 1 for a regression (the network's one output)."""
        return 1 if self.regression else len(self.class_names)

    @property
    def y_onehot(self) -> np.ndarray:
        """One-hot labels, or a regression's target as one column ``[rows, 1]``."""
        if self.regression:
            return self.y.astype(np.float32).reshape(-1, 1)
        return np.eye(self.n_classes, dtype=np.float32)[self.y]

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 (first 16 hex digits) of the content and its preprocessing."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.x).tobytes())
        digest.update(np.ascontiguousarray(self.y).tobytes())
        shown: tuple[object, ...] = (self.x.shape, self.class_names, self.standardized)
        if self.regression:  # absent for classes, so their fingerprints stay as they were
            shown = (*shown, self.task)
        if self.shuffle_seed is not None:  # absent unless shuffled, likewise
            shown = (*shown, ("shuffle", self.shuffle_seed))
        digest.update(repr(shown).encode())
        return digest.hexdigest()[:16]

    def split(self, validation_split: float) -> tuple[np.ndarray, ...]:
        """``(x_train, y_train, x_val, y_val)`` with one-hot labels; validation rows last."""
        at = split_index(self.n_rows, validation_split)
        onehot = self.y_onehot
        return self.x[:at], onehot[:at], self.x[at:], onehot[at:]

    def check_trainable(self, validation_split: float, batch_size: int) -> None:
        at = split_index(self.n_rows, validation_split)
        if at < batch_size or self.n_rows - at < 1:
            raise DataError(
                f"dataset {self.name!r} has {self.n_rows} rows: too few for a validation split "
                f"of {validation_split} and batch size {batch_size}; use more rows or lower them."
            )

    def scale_spread(self, validation_split: float) -> float:
        """Largest over smallest non-zero standard deviation of the training rows' features."""
        at = split_index(self.n_rows, validation_split)
        std = self.x[:at].reshape(at, -1).std(axis=0)
        std = std[std > 0]
        return float(std.max() / std.min()) if std.size > 1 else 1.0

    def standardize(self, validation_split: float) -> Dataset:
        """Features (and a regression's target) scaled by the training rows' statistics."""
        at = split_index(self.n_rows, validation_split)
        std = self.x[:at].std(axis=0, keepdims=True)
        std[std == 0] = 1.0
        x = ((self.x - self.x[:at].mean(axis=0, keepdims=True)) / std).astype(np.float32)
        y, scale = self.y, self.target_scale
        if self.regression:
            shift, spread = float(self.y[:at].mean()), float(self.y[:at].std()) or 1.0
            y = ((self.y - shift) / spread).astype(np.float32)
            before = scale or (0.0, 1.0)  # the raw target's scale, if scaled already
            scale = (before[0] + shift * before[1], spread * before[1])
        return replace(self, x=x, y=y, standardized=True, target_scale=scale)

    def shuffled(self, seed: int) -> Dataset:
        """The rows in an order drawn with ``seed`` (part of the fingerprint)."""
        order = np.random.default_rng(seed).permutation(self.n_rows)
        return replace(self, x=self.x[order], y=self.y[order], shuffle_seed=seed)

    def check_split(self, validation_split: float) -> Dataset:
        """With :attr:`split_warning` and :attr:`degenerate_validation` set for the split."""
        at = split_index(self.n_rows, validation_split)
        shuffled = self.shuffle_seed is not None
        if self.regression:
            warning, degenerate = check_target(self.y, at, validation_split, shuffled)
        else:
            warning, degenerate = check_classes(
                self.y, self.class_names, at, validation_split, shuffled
            )
        return replace(self, split_warning=warning, degenerate_validation=degenerate)

    @property
    def target_summary(self) -> tuple[float, float]:
        """A regression's target ``(mean, sd)`` over all rows, in the source's units."""
        y = self.y.astype(np.float64)
        if self.target_scale is not None:
            y = y * self.target_scale[1] + self.target_scale[0]
        return float(y.mean()), float(y.std())

    @property
    def description(self) -> str:
        """``300 rows, 4 features, 3 classes``, or ``..., regression: target mean 1.46, sd 3.3``."""
        shape = f"{self.n_rows} rows, {self.n_features} features"
        if not self.regression:
            return f"{shape}, {self.n_classes} classes"
        mean, sd = self.target_summary
        return f"{shape}, regression: target mean {mean:.3g}, sd {sd:.3g}"

    def target_notice(self) -> str | None:
        """One line when a raw regression target is far from mean 0 and sd 1, else None."""
        mean, sd = self.target_summary
        scaled = abs(mean) <= TARGET_SCALE and 1 / TARGET_SCALE <= sd <= TARGET_SCALE
        if not self.regression or self.standardized or scaled:
            return None
        return (
            f"bnsearch: notice: the regression target has mean {mean:.3g} and sd {sd:.3g} without "
            "--standardize, so the mean squared error and its gradients follow the target's scale "
            "and high learning rates may diverge; pass --standardize to scale it (and the "
            "features) with the training rows' mean and sd (val_loss and val_mae are then in "
            "standardised units)."
        )


def make_synthetic(n_rows: int = 6000, seed: int = 0) -> Dataset:
    """The thread's ``input_dim=14``: a binary customer table whose raw features span five
    orders of magnitude (docs/getting-started.md)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n_rows, 4))
    noise = rng.standard_normal((n_rows, 14))
    columns = {
        "age": 45 + 12 * latent[:, 0] + 3 * noise[:, 0],
        "income": np.exp(10.6 + 0.5 * latent[:, 1] + 0.1 * noise[:, 1]),
        "balance": 20_000 * np.maximum(latent[:, 1] + latent[:, 2] + 0.3 * noise[:, 2] + 1.5, 0),
        "purchases": rng.poisson(np.exp(1.5 + 0.5 * latent[:, 2])),
        "visits": rng.poisson(np.exp(2.5 + 0.3 * latent[:, 3])),
        "tenure_days": np.maximum(365 * (3 + 2 * latent[:, 0] + noise[:, 3]), 0),
        "click_rate": 1 / (1 + np.exp(-(latent[:, 3] + 0.5 * noise[:, 4]))),
        "discount_rate": rng.uniform(0, 0.3, n_rows),
        "is_member": (latent[:, 2] + 0.5 * noise[:, 5] > 0).astype(float),
        "has_app": (latent[:, 3] + noise[:, 6] > 0.5).astype(float),
        "score_a": latent[:, 0] * latent[:, 3] + 0.5 * noise[:, 7],
        "score_b": np.sin(2 * latent[:, 1]) + 0.5 * noise[:, 8],
        "score_c": noise[:, 9],
        "score_d": 0.5 * latent[:, 2] - 0.5 * latent[:, 0] + noise[:, 10],
    }
    logit = (
        1.5 * np.tanh(latent[:, 1])
        - 1.2 * latent[:, 0] * latent[:, 3]
        + 0.8 * np.abs(latent[:, 2])
        - 0.7
        + 0.3 * latent[:, 3]
    )
    y = (logit + 0.7 * rng.standard_normal(n_rows) > 0).astype(np.int64)
    return Dataset(
        name="synthetic",
        x=np.column_stack(list(columns.values())).astype(np.float32),
        y=y,
        class_names=("0", "1"),
        feature_names=tuple(columns),
        source=f"synthetic(n_rows={n_rows}, seed={seed})",
    )


def _set_task(task: str) -> str:
    return f'--task {task} (study file `task = "{task}"`)'


def _encode_labels(
    raw: np.ndarray, where: str, array: str | None
) -> tuple[np.ndarray, tuple[str, ...]]:
    if raw.dtype.kind == "f":
        if not np.all(finite := np.isfinite(raw)):
            raise _bad_rows(f"{where}: labels contain NaN or inf", ~finite, array)
        if not np.all(raw == np.round(raw)):
            raise DataError(
                f"{where}: labels are fractional numbers; to predict a real-valued target set "
                f"{_set_task('regression')}, or give integer or string class labels."
            )
        raw = raw.astype(np.int64)
    elif raw.dtype.kind not in "iubUSO":
        raise DataError(
            f"{where}: labels of type {raw.dtype} are not class labels; give integer or string "
            f"labels, or set {_set_task('regression')}."
        )
    if raw.dtype.kind == "O":
        missing = np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in raw])
        if missing.any():
            raise _bad_rows(f"{where}: labels contain missing values", missing, array)
        raw = raw.astype(str)
    classes, y = np.unique(raw, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{where}: labels hold a single class ({classes[0]}); need at least 2.")
    return y.astype(np.int64), tuple(str(c) for c in classes)


def _regression_target(raw: np.ndarray, where: str, array: str | None) -> np.ndarray:
    if raw.dtype.kind == "O":
        with contextlib.suppress(TypeError, ValueError):  # strings: refused below
            raw = raw.astype(np.float64)
    if raw.dtype.kind not in "iuf":
        raise DataError(
            f"{where}: a regression needs a numeric target, but the target holds {raw.dtype} "
            f"values; set {_set_task('classification')} for class labels."
        )
    if not np.all(finite := np.isfinite(raw.astype(np.float64))):
        raise _bad_rows(f"{where}: the target contains NaN or inf", ~finite, array)
    return raw.astype(np.float32)


def _targets(raw: Any, where: str, task: str, array: str | None = None) -> dict[str, Any]:
    """The Dataset fields ``y``, ``class_names``, ``task`` and ``task_note`` of a raw target
    column under ``task`` (docs/guides/data.md says how ``auto`` chooses)."""
    raw, why = np.asarray(raw), ""
    if task == "auto" and raw.dtype.kind == "f" and np.all(np.isfinite(raw)):
        if not np.all(raw == np.round(raw)):
            why = "holds fractional numbers"
        elif (distinct := len(np.unique(raw))) > MAX_AUTO_CLASSES:
            why = f"holds {distinct} distinct real values"
    if not (why or task == "regression"):
        y, classes = _encode_labels(raw, where, array)
        return {"y": y, "class_names": classes, "task": "classification"}
    note = f"bnsearch: task: regression, because the target of {where} {why}; "
    note += f"{_set_task('classification')} overrides it."
    y = _regression_target(raw, where, array)
    return {"y": y, "class_names": (), "task": "regression", "task_note": note if why else ""}


def _bad_rows(what: str, bad: np.ndarray, array: str | None) -> DataError:
    """``<what> in 2 of 300 rows (data rows 4 and 9; the first data row is 1); drop or fill
    those rows.`` (``array``: its index, counting from 0)."""
    rows = np.flatnonzero(bad)
    first = name_list([str(r if array else r + 1) for r in rows])
    plural = "s" if len(rows) > 1 else ""
    at = f"{array} index {first}, counting from 0" if array else f"data row{plural} {first}"
    at += "" if array else "; the first data row is 1"
    return DataError(f"{what} in {len(rows)} of {len(bad)} rows ({at}); drop or fill those rows.")


def _check_features(
    x: np.ndarray, where: str, columns: tuple[str, ...] = (), array: str | None = None
) -> np.ndarray:
    if x.shape[0] == 0:
        raise DataError(f"{where}: the dataset has no rows.")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x.reshape(x.shape[0], -1))
    if bad.any():
        named = [columns[i] for i in np.flatnonzero(bad.any(axis=0))] if columns else []
        plural = "s" if len(named) > 1 else ""
        in_columns = f" in column{plural} {name_list(named)}," if named else ""
        raise _bad_rows(f"{where}: features contain NaN or inf{in_columns}", bad.any(axis=1), array)
    return x


def _from_frame(frame, target: str | None, where: str, name: str, task: str) -> Dataset:
    import pandas as pd

    if frame.shape[0] == 0:
        raise DataError(f"{where}: the file holds no rows.")
    names = ", ".join(map(str, frame.columns))
    if target is None:
        raise DataError(
            f"{where}: say which column holds the labels with --target (columns: {names})."
        )
    if target not in frame.columns:
        raise DataError(f"{where}: target column {target!r} not found; columns are {names}.")
    features = frame.drop(columns=[target])
    non_numeric = [
        str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])
    ]
    if non_numeric:
        raise DataError(
            f"{where}: non-numeric feature columns {', '.join(non_numeric)}; encode them as "
            "numbers (e.g. one-hot) or drop them."
        )
    if features.shape[1] == 0:
        raise DataError(f"{where}: no feature columns besides the target {target!r}.")
    columns = tuple(map(str, features.columns))
    x = _check_features(features.to_numpy(dtype=np.float64, na_value=np.nan), where, columns)
    targets = _targets(frame[target].to_numpy(), where, task)
    return Dataset(name=name, x=x, feature_names=columns, source=where, **targets)


#: The compressions of a delimited file (pandas infers them from the name).
_COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz")
_SEPARATORS = {".csv": ",", ".tsv": "\t"}
_BINARY = (".parquet", ".pq", ".feather", ".npz")
#: What ``--data`` takes as a path, for the messages that refuse one.
ACCEPTED = (
    "a .csv or .tsv file (either may be compressed: .csv.gz, .bz2, .zip, .xz), a .parquet, "
    ".pq, .feather or .npz file, or a folder of .parquet files"
)


def _file_format(path: Path) -> tuple[str, str]:
    """``(format, suffixes)`` of a data file by its name (format ``""``: none)."""
    before, last = ["", "", *(s.lower() for s in path.suffixes)][-2:]
    if last in _COMPRESSIONS and before in _SEPARATORS:
        return before, before + last
    if last in _SEPARATORS or last in _BINARY:
        return (".parquet" if last == ".pq" else last), last
    return "", before + last if last in _COMPRESSIONS or before in _SEPARATORS else last


def dataset_name(data: str | None) -> str:
    """The dataset's name of a ``--data`` value: ``churn.csv.gz`` → ``churn``, ``sklearn:iris``
    → ``iris``."""
    spec = data or DEFAULT_DATA
    if ":" in spec and not Path(spec).exists():
        return spec.split(":", 1)[1]
    name = Path(spec).name
    return name[: len(name) - len(_file_format(Path(spec))[1])] or name


def _load_file(path: Path, target: str | None, task: str) -> Dataset:
    """A data file or a folder of ``.parquet`` files (:data:`ACCEPTED`), read by pandas."""
    import pandas as pd

    where = str(path)
    if not path.exists():
        raise DataError(f"data file {where} does not exist; check the path given to --data.")
    if path.is_dir():
        if not any(path.rglob("*.parquet")):
            raise DataError(
                f"data path {where} is a folder without .parquet files; give --data {ACCEPTED}."
            )
        kind, name = ".parquet", path.name.removesuffix(".parquet") or path.name
    elif not path.is_file():
        raise DataError(f"data path {where} is not a file; give --data {ACCEPTED}.")
    else:
        kind, suffixes = _file_format(path)
        if not kind:
            raise DataError(
                f"{where}: unknown extension {suffixes or '(none)'!r}; give --data {ACCEPTED}."
            )
        if path.stat().st_size == 0:
            raise DataError(f"{where}: the file is empty; it needs a header row and data.")
        name = dataset_name(where)
    try:
        if kind == ".npz":
            return _load_npz(path, where, name, task)
        if kind in _SEPARATORS:
            frame = _read_delimited(path, where, _SEPARATORS[kind])
        else:
            frame = pd.read_parquet(path) if kind == ".parquet" else pd.read_feather(path)
        return _from_frame(frame, target, where, name, task)
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001 - pandas', NumPy's and pyarrow's errors alike
        raise DataError(f"{where}: cannot be read ({error_line(error)}).") from error


def _load_npz(path: Path, where: str, name: str, task: str) -> Dataset:
    with np.load(path, allow_pickle=False) as arrays:
        if not {"X", "y"} <= set(arrays.files):
            raise DataError(
                f"{where}: an .npz needs arrays named X and y; it has "
                f"{', '.join(arrays.files) or 'none'}."
            )
        x, raw_y = arrays["X"], arrays["y"]
    if x.ndim < 2:
        raise DataError(
            f"{where}: X must have one row per example and at least one feature axis, "
            f"but has shape {x.shape}; save X.reshape(-1, 1) for a single feature."
        )
    if x.shape[0] != raw_y.shape[0]:
        raise DataError(f"{where}: X has {x.shape[0]} rows but y has {raw_y.shape[0]}.")
    if x.dtype.kind not in "iufb":
        raise DataError(f"{where}: X must be numeric, but has dtype {x.dtype}.")
    if raw_y.ndim == 1 or raw_y.shape[1:] == (1,):
        raw_y = raw_y.reshape(-1)
    elif raw_y.ndim == 2 and np.isin(raw_y, (0, 1)).all() and (raw_y.sum(axis=1) == 1).all():
        raw_y = raw_y.argmax(axis=1)  # one-hot rows
    else:
        raise DataError(
            f"{where}: y must hold one label per row (or one-hot rows), but has shape "
            f"{raw_y.shape}."
        )
    targets = _targets(raw_y, where, task, "y")
    return Dataset(name=name, x=_check_features(x, where, array="X"), source=where, **targets)


def _read_delimited(path: Path, where: str, sep: str) -> Any:
    """A CSV or TSV file as a frame; refused when its header names a column twice (pandas
    would rename it into a feature), is joined by another separator, or looks like data."""
    import pandas as pd

    try:
        first = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{where}: the file is empty; it needs a header row and data.") from None
    header = [str(name) for name in first.iloc[0]] if len(first) else []
    if repeated := sorted({name for name in header if header.count(name) > 1}):
        raise DataError(
            f"{where}: column names {', '.join(map(repr, repeated))} appear more than once; "
            "give every column its own name."
        )
    wanted = "save it comma-separated" if sep == "," else "save it tab-separated"
    for other, text, fix in (
        (";", "';'", wanted),
        ("\t", "tabs", f"{wanted} or name it .tsv"),
        (",", "','", f"{wanted} or name it .csv"),
    ):
        if len(header) == 1 and other != sep and other in header[0]:
            raise DataError(
                f"{where}: the header is one column {header[0]!r}; the file looks separated "
                f"by {text} — {fix}."
            )
    frame = pd.read_csv(path, sep=sep)
    if all(_looks_numeric(c) for c in frame.columns):
        raise DataError(
            f"{where}: the first row looks like data, not a header; add a header row "
            "naming the columns."
        )
    return frame


def _looks_numeric(name: object) -> bool:
    """Whether a column name reads as a number (``nan`` and ``1_000`` too), as data would."""
    try:
        float(str(name))
    except ValueError:
        return False
    return True


_SKLEARN_LOADERS = ("breast_cancer", "diabetes", "digits", "iris", "wine")


def _load_sklearn(name: str, images: bool, task: str) -> Dataset:
    import sklearn.datasets

    if name not in _SKLEARN_LOADERS:
        raise DataError(
            f"unknown scikit-learn dataset 'sklearn:{name}'; choose one of "
            f"{', '.join('sklearn:' + n for n in _SKLEARN_LOADERS)}."
        )
    bunch = getattr(sklearn.datasets, f"load_{name}")()
    x = bunch.images[..., None] if images and name == "digits" else bunch.data
    # scikit-learn's bundled sets are sorted by class in places; a fixed shuffle makes the
    # last-rows validation split representative, and stays the same on every run.
    order = np.random.default_rng(0).permutation(len(bunch.target))
    where, real = f"sklearn:{name}", name == "diabetes"  # the one with a real-valued target
    if task == "auto":
        task = "regression" if real else "classification"
    targets = _targets(np.asarray(bunch.target)[order], where, task)
    if task == "classification" and not real:
        targets["class_names"] = tuple(map(str, bunch.target_names))
    return Dataset(
        name=name,
        x=_check_features(np.asarray(x)[order], where),
        feature_names=tuple(map(str, getattr(bunch, "feature_names", ()))),
        source=where,
        **targets,
    )


def _load_openml(ident: str, target: str | None, task: str) -> Dataset:
    from sklearn.datasets import fetch_openml

    if not ident.isdigit():
        raise DataError(f"openml:{ident}: OpenML datasets are named by number, e.g. openml:31.")
    try:
        bunch = fetch_openml(data_id=int(ident), as_frame=True, parser="auto")
    except OSError as error:
        raise DataError(
            f"openml:{ident}: cannot download ({error}); you may be offline — download the "
            "data elsewhere and pass it as a CSV with --data."
        ) from error
    except ValueError as error:
        raise DataError(f"openml:{ident}: {error}") from error
    target = target or (bunch.target.name if bunch.target is not None else None)
    return _from_frame(bunch.frame, target, f"openml:{ident}", f"openml-{ident}", task)


def load_dataset(
    spec: str | None = None,
    target: str | None = None,
    *,
    standardize: bool = False,
    validation_split: float = 0.2,
    seed: int = 0,
    n_rows: int | None = None,
    images: bool = False,
    task: str = "auto",
    shuffle: bool = False,
    shuffle_seed: int = 0,
) -> Dataset:
    """Load a dataset and split it as Keras' ``validation_split`` does (the last rows); the
    split is checked (:attr:`Dataset.split_warning`, :attr:`Dataset.degenerate_validation`).

    Args:
        spec: ``None``/``"synthetic"`` (the built-in data), a data file or Parquet folder
            (see :data:`ACCEPTED`), ``sklearn:NAME`` or ``openml:ID``.
        target: the label column of a table file.
        standardize: scale the features (and a regression's target) with the training
            rows' mean and standard deviation.
        validation_split: the share of rows, the last ones, held out for validation.
        seed: the seed of the built-in data.
        n_rows: the built-in data's rows (its default if None).
        images: load ``sklearn:digits`` as 8x8x1 images (for the cnn family) instead of 64
            flat features; an ``.npz`` keeps the shape of its arrays either way.
        task: one of :data:`TASKS` (docs/guides/data.md says how ``auto`` chooses).
        shuffle: shuffle the rows with ``shuffle_seed`` before the split (a study uses its
            ``seed``), for data whose last rows are not a fair sample.
        shuffle_seed: the seed of that shuffle.

    Returns:
        The features, labels, split, task and fingerprint.

    Raises:
        DataError: the data cannot be used (one line naming the problem and the fix).

    Examples:
        >>> import bnsearch
        >>> data = bnsearch.load_dataset()
        >>> data.n_rows, data.n_features, data.n_classes
        (6000, 14, 2)
    """
    spec = spec or DEFAULT_DATA
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    if spec == DEFAULT_DATA:
        if task == "regression":
            raise DataError(
                "the synthetic data is a classification problem (two classes); give "
                "--data with a real-valued target for --task regression."
            )
        dataset = make_synthetic(n_rows or 6000, seed=seed)
    elif spec.startswith("sklearn:"):
        dataset = _load_sklearn(spec.removeprefix("sklearn:"), images=images, task=task)
    elif spec.startswith("openml:"):
        dataset = _load_openml(spec.removeprefix("openml:"), target, task)
    else:
        dataset = _load_file(Path(spec), target, task)
    if shuffle:
        dataset = dataset.shuffled(shuffle_seed)
    if standardize:
        dataset = dataset.standardize(validation_split)
    return dataset.check_split(validation_split)

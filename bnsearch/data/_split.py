"""Is the validation split honest? The last rows checked against the training rows; the
rules and their thresholds are in docs/guides/data.md ("The split check")."""

from __future__ import annotations

import numpy as np

from bnsearch.errors import name_list

#: Total-variation distance between training and validation class shares that is "far apart".
MAX_CLASS_SHIFT = 0.25
#: ... when the χ² test of homogeneity also puts it beyond chance (p below this).
SHIFT_P_VALUE = 1e-3
#: A class absent from validation is named when its training share predicts this many rows.
MIN_EXPECTED_ROWS = 5
#: The split check's finding: one warning line and, separately, why the validation rows
#: cannot rank anything (each None when there is nothing to say).
SplitCheck = tuple[str | None, str | None]


def _fix(shuffled: bool, remedy: str = "raise --validation-split or add rows of them") -> str:
    if shuffled:
        return f"the rows are shuffled already: {remedy}"
    return "pass --shuffle (study file `shuffle = true`) to shuffle the rows before the split"


def _head(validation_split: float) -> str:
    return f"bnsearch: warning: the validation rows (the last {validation_split * 100:.3g} %)"


def _classes(names: list[str]) -> str:
    return f"class{'es' if len(names) > 1 else ''} {name_list(names)}"


def _shift(train: np.ndarray, val: np.ndarray, class_names: tuple[str, ...]) -> str | None:
    """The classes whose shares differ most, when the shares are far apart beyond chance."""
    k = len(class_names)
    train_counts = np.bincount(train, minlength=k)
    val_counts = np.bincount(val, minlength=k)
    train_share, val_share = train_counts / len(train), val_counts / len(val)
    distance = 0.5 * float(np.abs(train_share - val_share).sum())
    if distance <= MAX_CLASS_SHIFT:
        return None
    from scipy.stats import chi2_contingency

    seen = (train_counts + val_counts) > 0
    table = np.stack([train_counts[seen], val_counts[seen]])
    if table.shape[1] > 1 and chi2_contingency(table).pvalue >= SHIFT_P_VALUE:
        return None
    order = np.argsort(-np.abs(train_share - val_share))[:3]
    shares = ", ".join(
        f"{class_names[i]} {val_share[i] * 100:.0f} % against {train_share[i] * 100:.0f} %"
        for i in order
    )
    return (
        f"hold class shares far from the training rows' (validation against training: "
        f"{shares}; total variation {distance:.2f})"
    )


def check_classes(
    y: np.ndarray, class_names: tuple[str, ...], at: int, validation_split: float, shuffled: bool
) -> SplitCheck:
    """The split check of a classification whose validation rows start at ``at``."""
    train, val = np.asarray(y[:at]), np.asarray(y[at:])
    if len(train) == 0 or len(val) == 0:
        return None, None
    in_train, in_val = set(train.tolist()), set(val.tolist())
    unseen = [class_names[c] for c in sorted(in_val - in_train)]
    expected = np.bincount(train, minlength=len(class_names)) / len(train) * len(val)
    missing = [
        name
        for c, name in enumerate(class_names)
        if c not in in_val and expected[c] >= MIN_EXPECTED_ROWS
    ]
    problems = []
    if unseen:
        problems.append(f"hold {_classes(unseen)}, which the training rows lack")
    if missing:
        problems.append(f"lack {_classes(missing)}")
    if not problems and (shift := _shift(train, val, class_names)):
        problems.append(shift)
    degenerate = None
    if len(in_val) == 1:
        one_class = f"hold one class only ({class_names[val[0]]})"
        degenerate = f"the validation rows {one_class}"
        problems = problems or [one_class]  # said even when that class is expected alone there
    elif unseen:
        degenerate = f"the validation rows hold {_classes(unseen)}, never trained on"
    if not problems:
        return None, None
    return (
        f"{_head(validation_split)} {', and '.join(problems)}; their metrics do not measure "
        f"the whole task: {_fix(shuffled)}.",
        degenerate,
    )


def check_target(y: np.ndarray, at: int, validation_split: float, shuffled: bool) -> SplitCheck:
    """The split check of a regression whose validation rows start at ``at``."""
    train, val = np.asarray(y[:at], np.float64), np.asarray(y[at:], np.float64)
    if len(train) == 0 or len(val) == 0:
        return None, None
    low, high = np.quantile(train, [0.05, 0.95])
    mean = float(val.mean())
    beyond = float(np.mean((val < train.min()) | (val > train.max())))
    if low <= mean <= high and beyond <= 0.5:
        return None, None
    fix = _fix(shuffled, "check the target for outliers")
    return (
        f"{_head(validation_split)} hold targets outside the training rows' range "
        f"(validation mean {mean:.3g}, training 5-95 % range {low:.3g} to {high:.3g}; "
        f"{beyond * 100:.0f} % of validation targets beyond the training minimum or maximum); "
        f"their metrics measure extrapolation: {fix}.",
        None,
    )

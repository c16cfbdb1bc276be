"""``python -m bnsearch bench --backends`` / ``--until``: the default study run several ways,
each in a fresh process with fresh stores; a benchmark, not a test."""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from typing import Any

#: ``bench --backends``: the whole budget each, so that every backend trains as many trials.
BACKENDS = (
    ("optuna", {"backend": "optuna", "until": "budget"}),
    ("keras-tuner random", {"backend": "keras-tuner", "tuner": "random", "until": "budget"}),
    ("keras-tuner bayesian", {"backend": "keras-tuner", "tuner": "bayesian", "until": "budget"}),
)
#: ``bench --until``: the default study stopped when settled, and with its whole budget.
UNTIL = (
    ("until settled", {"until": "settled"}),
    ("until budget", {"until": "budget"}),
)


def _one_study(settings: dict[str, Any], folder: str, answers: Any) -> None:
    from bnsearch._quiet import import_tensorflow_quietly
    from bnsearch.config import StudyConfig
    from bnsearch.study import run_study

    import_tensorflow_quietly()
    config = StudyConfig(
        storage=f"sqlite:///{folder}/optuna.db",
        tracking_uri=f"sqlite:///{folder}/mlflow.db",
        verbose=False,
        **settings,
    )
    started = time.monotonic()
    outcome = run_study(config)
    primary = outcome.verdict.primary
    answers.put(
        {
            "seconds": time.monotonic() - started,
            "trials": len(outcome.new_results),
            "outcome": outcome.verdict.outcome,
            "blocks": outcome.verdict.n_blocks,
            "median": None if primary is None else primary.median,
            "ci": None if primary is None else primary.interval(outcome.verdict.until),
        }
    )


def compare_backends(
    overrides: dict[str, Any] | None = None,
    variants: tuple[tuple[str, dict[str, Any]], ...] = BACKENDS,
) -> None:
    """Run and print the comparison of ``variants`` (label, settings), the first one the
    base of the ratios; ``overrides`` change every study's settings alike."""
    context = multiprocessing.get_context("spawn")
    rows = []
    for label, settings in variants:
        answers = context.Queue()
        with tempfile.TemporaryDirectory(prefix="bnsearch-bench-") as folder:
            process = context.Process(
                target=_one_study, args=({**settings, **(overrides or {})}, folder, answers)
            )
            process.start()
            process.join()
            if process.exitcode != 0:
                print(f"{label}: failed (exit {process.exitcode})", flush=True)
                continue
            rows.append((label, answers.get()))
            print(f"{label}: done in {rows[-1][1]['seconds']:.0f} s", flush=True)
    base = rows[0][1]["seconds"] if rows else None
    print(
        f"\n{'study':<22}{'trials':>7}{'blocks':>7}{'wall s':>9}{'x first':>9}  verdict "
        "(before - after, median [the rule's 95% interval])"
    )
    for label, row in rows:
        ratio = f"{row['seconds'] / base:.2f}" if base else "-"
        interval = ""
        if row["median"] is not None:
            low, high = row["ci"]
            interval = f" {row['median']:+.4f} [{low:+.4f}, {high:+.4f}]"
        print(
            f"{label:<22}{row['trials']:>7}{row['blocks']:>7}{row['seconds']:>9.0f}{ratio:>9}  "
            f"{row['outcome']}{interval}",
            flush=True,
        )

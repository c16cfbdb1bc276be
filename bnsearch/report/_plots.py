"""Every plot bnsearch draws, and the one place matplotlib is imported (late, headless:
a study that writes no report never loads it)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bnsearch.report._summary import second_metric
from bnsearch.stats import QUESTION_TEXT, RUNAWAY, AcrossVerdict, Verdict, metric_value
from bnsearch.trial import TrialResult, in_placement_order

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _finite(values: Sequence[float]) -> tuple[list[float], int]:
    """``values`` without run-aways (they would stretch the axis), and how many are out."""
    kept = [v for v in values if math.isfinite(v) and abs(v) < RUNAWAY]
    return kept, len(values) - len(kept)


@contextlib.contextmanager
def _figure(path: Path, *grid: int, **options: Any) -> Iterator[tuple[Figure, Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*grid, **options)
    yield fig, axes
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _left_out(count: int, what: str) -> str:
    return f" ({count} {what} left out)" if count else ""


def plot_distribution(results: Sequence[TrialResult], metric: str, path: Path) -> None:
    placements = in_placement_order(r.config.placement for r in results)
    values, away = [], 0
    for p in placements:
        mine = [metric_value(r, metric) for r in results if r.config.placement == p]
        kept, dropped = _finite([v for v in mine if v is not None])
        values.append(kept)
        away += dropped
    with _figure(path, figsize=(6.5, 4)) as (_, ax):
        positions = list(range(1, len(placements) + 1))
        if any(values):
            ax.boxplot([v or [math.nan] for v in values], positions=positions, widths=0.5)
        rng = np.random.default_rng(0)
        for position, vals in zip(positions, values, strict=True):
            ax.scatter(position + rng.uniform(-0.15, 0.15, len(vals)), vals, s=10, alpha=0.5)
        labels = [f"{p}\n(n={len(v)})" for p, v in zip(placements, values, strict=True)]
        ax.set_xticks(positions, labels)
        ax.set_ylabel(f"final {metric}")
        ax.set_title(
            f"{metric} per placement (completed search trials{_left_out(away, 'run-away')})"
        )


def plot_differences(verdict: Verdict, path: Path) -> None:
    """Each pair's differences and its median with the bootstrap interval; blocks with a
    diverged trial are counted in the label, not drawn."""
    with _figure(path, figsize=(6.5, 1.2 + 0.9 * max(len(verdict.pairs), 1))) as (_, ax):
        ax.axvspan(-verdict.threshold, verdict.threshold, color="0.9", label="± threshold")
        ax.axvline(0, color="0.5", lw=0.8)
        rng = np.random.default_rng(0)
        labels = []
        for row, pair in enumerate(verdict.pairs):
            diffs, away = _finite(pair.differences)
            ax.scatter(diffs, row + rng.uniform(-0.2, 0.2, len(diffs)), s=8, alpha=0.4)
            _, out = _finite([pair.median, pair.ci_low, pair.ci_high])
            if not out:  # a bar only for an interval with no run-away end
                err = [[pair.median - pair.ci_low], [pair.ci_high - pair.median]]
                ax.errorbar(pair.median, row, xerr=err, fmt="o", color="black", capsize=4)
            asked = verdict.question_of(pair)
            question = f"\n({QUESTION_TEXT[asked]})" if asked else ""
            labels.append(f"{pair.first} − {pair.second}{question}{_left_out(away, 'diverged')}")
        ax.set_yticks(range(len(verdict.pairs)), labels)
        ax.set_xlabel(f"paired difference in final {verdict.metric} (median, 95% bootstrap CI)")
        ax.legend(loc="lower right", fontsize=8)


def plot_curves(results: Sequence[TrialResult], path: Path) -> None:
    """The median learning curves per placement of ``val_loss`` and the second metric,
    over the completed trials that did not run away."""
    second = second_metric(results)
    with _figure(path, 1, 2, figsize=(9, 3.6)) as (fig, axes):
        for placement in in_placement_order(r.config.placement for r in results):
            for ax, metric in zip(axes, ("val_loss", second), strict=True):
                curves = [
                    r.history[metric]
                    for r in results
                    if r.config.placement == placement
                    and metric_value(r, metric) is not None
                    and len(_finite(r.history[metric])[0]) == len(r.history[metric])
                ]
                if not curves:
                    continue
                length = min(len(c) for c in curves)
                median = np.median(np.asarray([c[:length] for c in curves]), axis=0)
                ax.plot(range(1, length + 1), median, label=f"{placement} (n={len(curves)})")
                ax.set_xlabel("epoch")
                ax.set_ylabel(f"median {metric}")
        if axes[0].get_legend_handles_labels()[0]:
            axes[0].legend(fontsize=8)
        fig.suptitle("median learning curves per placement")


def plot_importance(importances: dict[str, float], path: Path, note: str = "") -> None:
    """The importances as bars; without them, why (``note``)."""
    with _figure(path, figsize=(6.5, 3)) as (_, ax):
        ranked = sorted(importances.items(), key=lambda kv: kv[1])
        if ranked:
            ax.barh([k for k, _ in ranked], [v for _, v in ranked])
            ax.set_xlabel("importance (Optuna fANOVA, seeded)")
        else:
            text = f"importance left out:\n{note}" if note else "importance not available"
            ax.text(0.5, 0.5, text, ha="center", va="center")
            ax.set_axis_off()
        ax.set_title("hyperparameter importance")


def plot_critical_difference(verdict: AcrossVerdict, path: Path) -> None:
    """Mean ranks on one axis (best on the left), Nemenyi's CD bar for scale, and a
    thick line joining placements the Holm-corrected pairwise tests do not separate."""
    placements = sorted(verdict.placements, key=verdict.mean_ranks.__getitem__)
    k = max(len(verdict.placements), 2)
    with _figure(path, figsize=(6.5, 1.2 + 0.35 * len(placements))) as (_, ax):
        ax.set_xlim(0.8, k + 0.2)
        ax.set_ylim(-len(placements) - 1, 1.5)
        ax.hlines(0, 1, k, color="black")
        for rank in range(1, k + 1):
            ax.vlines(rank, -0.1, 0.1, color="black")
            ax.text(rank, 0.25, str(rank), ha="center")
        for row, placement in enumerate(placements, start=1):
            x = verdict.mean_ranks[placement]
            ax.vlines(x, -row, 0, color="tab:blue", linewidth=0.8)
            ax.plot(x, 0, "o", color="tab:blue")
            ax.text(x + 0.03, -row + 0.1, f"{placement} ({x:.2f})", va="bottom")
        joined = [(p.first, p.second) for p in verdict.pairs if p.p_holm >= 0.05]
        for offset, (first, second) in enumerate(joined):
            a, b = sorted((verdict.mean_ranks[first], verdict.mean_ranks[second]))
            ax.hlines(-0.45 - 0.15 * offset, a - 0.02, b + 0.02, color="tab:red", linewidth=3)
        if verdict.critical_difference is not None:
            cd = verdict.critical_difference
            ax.hlines(1.1, 1, 1 + cd, color="gray", linewidth=2)
            ax.text(1 + cd / 2, 1.2, f"Nemenyi CD {cd:.2f}", ha="center", fontsize=8)
        ax.set_title(
            f"mean rank of each placement over {len(verdict.datasets)} datasets "
            "(red: not separated, Holm-Wilcoxon)",
            fontsize=9,
        )
        ax.axis("off")

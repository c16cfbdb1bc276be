"""Render a Verdict and its trials: PNG plots, ``report.md`` and a self-contained ``report.html``.

Nothing here trains or decides anything; it only draws what :mod:`bnsearch.stats` found.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path

from bnsearch.report._plots import (
    plot_critical_difference,
    plot_curves,
    plot_differences,
    plot_distribution,
    plot_importance,
)
from bnsearch.report._summary import PlacementSummary, format_table, summarize
from bnsearch.stats import AcrossVerdict, Verdict
from bnsearch.trial import Phase, TrialResult

__all__ = [
    "PLOTS",
    "outcome_label",
    "run_note",
    "write_report",
    "write_sweep_report",
]

PLOTS = ("distribution.png", "paired_differences.png", "learning_curves.png", "importance.png")


_RULES = {
    "settled": "Rule: until settled. The study looked after every batch of blocks and "
    "stopped when the anytime-valid 95% confidence sequence of the median difference lay "
    "wholly beyond the threshold or wholly inside it; that sequence alone decides (the "
    "bootstrap interval and p-values are shown for reference, they do not allow for the "
    "repeated looks).",
    "budget": "Rule: fixed budget. The whole budget was trained and looked at once: the "
    "better placement needs its bootstrap interval beyond the threshold and Holm-corrected "
    "Wilcoxon p < 0.05.",
}


# long because it is the report page itself, section after section.
def _markdown(
    study_name: str, verdict: Verdict, results: Sequence[TrialResult], dataset_line: str
) -> str:
    lines = [
        f"# bnsearch report: {study_name}",
        "",
        dataset_line,
        "",
        "## Verdict",
        "",
        verdict.statement,
        "",
        f"Metric: final-epoch `{verdict.metric}`; practical threshold {verdict.threshold:g}; "
        f"{verdict.n_blocks} paired blocks (trials sharing every hyperparameter and the seed, "
        "differing only in placement).",
        "",
        _RULES[verdict.until],
        "",
        "## Paired comparisons",
        "",
        "| pair | blocks | median diff | 95% CI (median) | anytime-valid 95% CS | mean diff "
        "| d_z | Wilcoxon p | Holm p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in verdict.pairs:
        lines.append(
            f"| {p.first} − {p.second} | {p.n_blocks} | {p.median:+.4f} | "
            f"[{p.ci_low:+.4f}, {p.ci_high:+.4f}] | [{p.cs_low:+.4f}, {p.cs_high:+.4f}] | "
            f"{p.mean:+.4g} | {p.effect_size:+.2f} | {p.p_value:.3g} | {p.p_holm:.3g} |"
        )
    excluded = ", ".join(f"{k}: {v}" for k, v in verdict.excluded_blocks.items())
    lines += ["", f"Trials left out of the pairs (failed or pruned): {excluded or 'none'}.", ""]
    if verdict.by_activation:
        lines += [
            "## Placement per activation",
            "",
            "The study searched the activation; each block shares one, so the paired "
            "comparisons can be made within each activation:",
            "",
            "| activation | verdict | pair | blocks | median diff | 95% CI | Holm p |",
            "|---|---|---|---|---|---|---|",
        ]
        for activation, sub in verdict.by_activation.items():
            p = sub.primary
            if p is None:
                lines.append(f"| {activation} | {sub.outcome} | | 0 | | | |")
                continue
            lines.append(
                f"| {activation} | {sub.outcome} | {p.first} − {p.second} | {p.n_blocks} | "
                f"{p.median:+.4f} | [{p.ci_low:+.4f}, {p.ci_high:+.4f}] | {p.p_holm:.3g} |"
            )
        lines.append("")
    if verdict.confirmations:
        lines += [
            "## Best configuration per placement, re-trained with fresh seeds",
            "",
            f"| placement | mean {verdict.metric} | sd over seeds | seeds | configuration |",
            "|---|---|---|---|---|",
        ]
        for c in verdict.confirmations:
            params = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in c.params.items()
                if k != "placement"
            )
            if not c.values:
                lines.append(f"| {c.placement} | – | – | 0 (each diverged or failed) | {params} |")
                continue
            lines.append(
                f"| {c.placement} | {c.mean:.4f} | {c.std:.4f} | {len(c.values)} | {params} |"
            )
        lines.append("")
    if verdict.importances:
        lines += ["## Hyperparameter importance (PED-ANOVA)", ""]
        for name, value in sorted(verdict.importances.items(), key=lambda kv: -kv[1]):
            lines.append(f"- {name}: {value:.3f}")
        lines.append("")
    lines += [
        "## All trials per placement",
        "",
        "```",
        format_table(summarize([r for r in results if r.spec.phase == Phase.SEARCH])),
        "```",
        "",
        "## Plots",
        "",
    ]
    lines += [f"![{name}]({name})" for name in PLOTS]
    return "\n".join(lines) + "\n"


def _inline(text: str) -> str:
    """Escape, then the two inline marks the reports use: **bold** and `code`."""
    import re

    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _html(markdown_text: str, folder: Path) -> str:
    """A self-contained page that renders well in MLflow's artifact viewer: headings,
    paragraphs that wrap, real tables, plots inlined."""
    body: list[str] = []
    table: list[list[str]] = []

    def close_table() -> None:
        if not table:
            return
        head, *rows = table
        cells = "".join(f"<th>{_inline(c)}</th>" for c in head)
        lines = [f"<table><thead><tr>{cells}</tr></thead><tbody>"]
        for row in rows:
            lines.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>")
        body.append("".join(lines) + "</tbody></table>")
        table.clear()

    for line in markdown_text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):  # not the |---| rule
                table.append(cells)
            continue
        close_table()
        if line.startswith("![") and line.endswith(")"):
            name = line[line.index("(") + 1 : -1]
            data = base64.b64encode((folder / name).read_bytes()).decode()
            body.append(
                f'<p><img alt="{html.escape(name)}" src="data:image/png;base64,{data}"></p>'
            )
        elif line.startswith("# "):
            body.append(f"<h1>{_inline(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{_inline(line[3:])}</h2>")
        elif line.startswith(("* ", "- ")):
            body.append(f"<ul><li>{_inline(line[2:])}</li></ul>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    close_table()
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em;"
        "overflow-wrap:anywhere}table{border-collapse:collapse;margin:0.5em 0;font-size:0.9em}"
        "th,td{border:1px solid #ccc;padding:0.2em 0.5em;text-align:left}"
        "th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>bnsearch report</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_report(
    folder: Path,
    study_name: str,
    verdict: Verdict,
    results: Sequence[TrialResult],
    dataset_line: str = "",
) -> list[Path]:
    """Write the plots, ``report.md`` and ``report.html`` into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    search = [r for r in results if r.spec.phase == Phase.SEARCH]
    plot_distribution(search, verdict.metric, folder / PLOTS[0])
    plot_differences(verdict, folder / PLOTS[1])
    plot_curves(search, folder / PLOTS[2])
    plot_importance(verdict.importances, folder / PLOTS[3])
    markdown_text = _markdown(study_name, verdict, results, dataset_line)
    (folder / "report.md").write_text(markdown_text)
    (folder / "report.html").write_text(_html(markdown_text, folder))
    return [folder / "report.md", folder / "report.html", *(folder / name for name in PLOTS)]


def write_sweep_report(folder: Path, title: str, verdict: AcrossVerdict) -> list[Path]:
    """The verdict across a sweep's datasets: its table, ``critical_difference.png``,
    ``report.md`` and ``report.html`` in ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    plot = folder / "critical_difference.png"
    plot_critical_difference(verdict, plot)
    placements = verdict.placements
    lines = [
        f"# Placement across datasets: {title}",
        "",
        verdict.statement,
        "",
        f"Metric: final-epoch `{verdict.metric}`. A score is the median over the study's "
        "complete paired blocks; rank 1 is the best placement of that dataset.",
        "",
        "## Per study",
        "",
        "| study | verdict | blocks | "
        + " | ".join(f"{p} score (rank)" for p in placements)
        + " | statement |",
        "|---|---|---|" + "---|" * len(placements) + "---|",
    ]
    for dataset in verdict.datasets:
        lower = "accuracy" not in verdict.metric
        ordered = sorted(placements, key=lambda p: dataset.scores[p] * (1 if lower else -1))
        cells = " | ".join(f"{dataset.scores[p]:.4g} ({ordered.index(p) + 1})" for p in placements)
        lines.append(
            f"| {dataset.study} | {dataset.verdict.outcome} | {dataset.verdict.n_blocks} | "
            f"{cells} | {dataset.verdict.statement} |"
        )
    lines += [
        "",
        "## Mean ranks and pairs",
        "",
        "Mean rank: " + ", ".join(f"{p} {verdict.mean_ranks[p]:.2f}" for p in placements) + ".",
        "",
        "| pair | datasets | first better in | second better in | Wilcoxon p | Holm p |",
        "|---|---|---|---|---|---|",
    ]
    for pair in verdict.pairs:
        lines.append(
            f"| {pair.first} − {pair.second} | {pair.datasets} | {pair.first_better} | "
            f"{pair.second_better} | {pair.p_value:.3g} | {pair.p_holm:.3g} |"
        )
    lines += ["", f"![critical difference]({plot.name})", ""]
    markdown_text = "\n".join(lines)
    (folder / "report.md").write_text(markdown_text)
    (folder / "report.html").write_text(_html(markdown_text, folder))
    return [folder / "report.md", folder / "report.html", plot]


def outcome_label(verdict: Verdict) -> str:
    """The verdict in a few words and its interval, for a run name (MLflow shows it at the
    top of the run's page, where its description is below the fold):
    ``before better, −0.149 [−0.170, −0.141], 8 blocks``."""
    words = {"no-effect": "no effect", "insufficient": "too few blocks"}.get(
        verdict.outcome, verdict.outcome
    )
    if verdict.outcome not in ("no-effect", "inconclusive", "insufficient"):
        words = f"{verdict.outcome} better"
    pair = verdict.primary
    if pair is None:
        return words
    low, high = (
        (pair.cs_low, pair.cs_high) if verdict.until == "settled" else (pair.ci_low, pair.ci_high)
    )
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{words} ({pair.n_blocks} blocks)"
    return f"{words}, {pair.median:+.3f} [{low:+.3f}, {high:+.3f}], {pair.n_blocks} blocks"


def run_note(
    study_name: str,
    verdict: Verdict,
    table: Sequence[PlacementSummary] = (),
) -> str:
    """The parent run's description in MLflow (its note): the answer first, in a few lines
    of markdown a person reads without opening anything."""
    lines = [f"**{verdict.statement}**", ""]
    primary = verdict.primary
    if primary is not None:
        low, high = (
            (primary.cs_low, primary.cs_high)
            if verdict.until == "settled"
            else (primary.ci_low, primary.ci_high)
        )
        kind = "anytime-valid 95% interval" if verdict.until == "settled" else "95% CI"
        lines.append(
            f"{primary.first} − {primary.second}: median {primary.median:+.4f}, {kind} "
            f"[{low:+.4f}, {high:+.4f}], {primary.n_blocks} blocks; metric final "
            f"`{verdict.metric}`, threshold {verdict.threshold:g}."
        )
        lines.append("")
    rule = (
        "until settled (stopped when the anytime-valid interval answered, or at the cap)"
        if verdict.until == "settled"
        else "fixed budget (the whole budget, looked at once)"
    )
    lines += [f"Rule: {rule}.", ""]
    confirmations = {c.placement: c for c in verdict.confirmations}
    if table:
        lines += [
            "| placement | trials | best val_loss | fresh seeds, mean ± sd | best configuration |",
            "|---|---|---|---|---|",
        ]
        for row in table:
            conf = confirmations.get(row.placement)
            seeds, params = "", ""
            if conf is not None:
                if conf.values:
                    seeds = f"{conf.mean:.4f} ± {conf.std:.4f} ({len(conf.values)})"
                params = ", ".join(
                    f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in conf.params.items()
                    if k != "placement"
                )
            lines.append(
                f"| {row.placement} | {row.complete} | {row.best_val_loss:.4f} | {seeds} | "
                f"{params} |"
            )
        lines.append("")
    lines.append(
        f"Report: `report.md` / `report.html` in this run's artifacts; rebuild it with "
        f"`python -m bnsearch report --study-name {study_name}`."
    )
    return "\n".join(lines)

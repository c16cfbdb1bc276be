"""A Verdict and its trials as PNG plots, ``report.md`` and a self-contained ``report.html``."""

from __future__ import annotations

import base64
import html
import math
import re
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
from bnsearch.stats import (
    ASKED,
    QUESTION_TEXT,
    RUNAWAY,
    AcrossVerdict,
    Outcome,
    Verdict,
    counted,
    quoted_questions,
    significant,
    too_few,
)
from bnsearch.trial import Phase, TrialResult, lower_is_better, plain

PLOTS = ("distribution.png", "paired_differences.png", "learning_curves.png", "importance.png")


_RULES = {
    "settled": "Rule: until settled. The study looked after every batch of blocks and "
    "stopped when the questions it asks (here: {asked}) were settled: the anytime-valid 95% "
    "confidence sequence of the median difference wholly beyond the threshold or wholly "
    "inside it; those sequences alone decide (the bootstrap intervals and p-values are shown "
    "for reference, they do not allow for the repeated looks). A BN placement beats `none` "
    "only when, in addition, the closed test over the BN placements names it (each set of BN "
    "placements tested by betting block by block on the one leading so far): the chance of "
    "naming any placement that does not beat `none` stays under 2.5%, with no alpha split.",
    "budget": "Rule: fixed budget. The whole budget was trained and looked at once: a "
    "placement is better than another when its bootstrap interval lies beyond the threshold "
    "and the Wilcoxon p, Holm-corrected across every pair (both questions' comparisons "
    "together, which handles the several BN placements against `none`), is below 0.05.",
}


def _params(params: dict, digits: int = 4) -> str:
    return ", ".join(
        f"{k}={significant(v, digits)}" if isinstance(v, float) else f"{k}={plain(v)}"
        for k, v in params.items()
        if k != "placement"
    )


# long because it is the report page itself, section after section.
def _markdown(
    study_name: str, verdict: Verdict, search: Sequence[TrialResult], dataset_line: str
) -> str:
    lines = [
        f"# bnsearch report: {study_name}",
        "",
        dataset_line,
        "",
        "## Verdict",
        "",
        f"**{verdict.headline}**",
        "",
    ]
    if verdict.unanswered is not None:
        lines += [verdict.unanswered, ""]
    else:
        lines += [
            f"Does BN help? {verdict.bn.statement}",
            "",
            f"Before or after? {verdict.placement.statement}",
            "",
        ]
    if verdict.still_open:
        lines += [verdict.still_open, ""]
    if verdict.input_control and verdict.unpaired is None:
        lines += [verdict.input_control, ""]
    for text in verdict.disagreements:
        lines += [f"**{text.split(':')[0]}:**{text.split(':', 1)[1]}", ""]
    lines += [
        f"Metric: final-epoch `{verdict.metric}`; practical threshold {verdict.threshold:g}; "
        f"{counted(verdict.n_blocks, 'paired block')} (trials sharing every hyperparameter and "
        "the seed, differing only in placement).",
        "",
    ]
    if verdict.no_ranking is None:  # no rule decided anything otherwise
        lines += [_RULES[verdict.until].format(asked=quoted_questions(ASKED[verdict.question])), ""]
    lines += _pairs_table(verdict)
    excluded = ", ".join(f"{k}: {v}" for k, v in verdict.excluded_blocks.items())
    lost = ", ".join(f"{k}: {v}" for k, v in verdict.diverged_blocks.items() if v)
    lines += [
        "",
        f"Trials left out of the pairs (pruned, or failed by an exception): {excluded or 'none'}."
        f" Trials that diverged (loss NaN or infinite), each counted as losing its block with "
        f"the worst loss a float32 holds: {lost or 'none'}.",
        "",
    ]
    if verdict.by_activation:
        lines += [
            "## Per activation",
            "",
            "The study searched the activation; each block shares one, so the paired "
            "comparisons can be made within each activation:",
            "",
            "| activation | does BN help? | before or after? | pair | blocks | median diff "
            "| interval |",
            "|---|---|---|---|---|---|---|",
        ]
        for activation, sub in verdict.by_activation.items():
            p, cells = sub.primary, " | 0 | | |"
            if p is not None:
                cells = f" {p.first} − {p.second} | {p.n_blocks} | {p.median_text} | "
                cells += f"{p.interval_text(sub.until)} |"
            lines.append(f"| {activation} | {sub.bn.outcome} | {sub.outcome} |{cells}")
        lines.append("")
    if verdict.confirmations and verdict.no_ranking is None:
        lines += _confirmations_table(verdict)
    if verdict.importances or verdict.importance_note:
        lines += ["## Hyperparameter importance (fANOVA, seeded)", ""]
        ranked = sorted(verdict.importances.items(), key=lambda kv: -kv[1])
        lines += [f"- {name}: {value:.3f}" for name, value in ranked]
        lines += [""] if ranked else [f"Left out: {verdict.importance_note}.", ""]
    lines += [
        "## All trials per placement",
        "",
        "```",
        format_table(summarize(search)),
        "```",
        "",
        "## Plots",
        "",
    ]
    lines += [f"![{name}]({name})" for name in PLOTS]
    return "\n".join(lines) + "\n"


def _pairs_table(verdict: Verdict) -> list[str]:
    if verdict.no_ranking is not None:
        return []
    lines = [
        "## Paired comparisons",
        "",
        "| pair | question | blocks | median diff | 95% CI (median) | anytime-valid 95% CS "
        "| mean diff | d_z | Wilcoxon p | Holm p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in verdict.pairs:
        question = QUESTION_TEXT["bn" if p.second == "none" else "placement"]
        if p is not verdict.primary and p.second != "none":
            question = ""
        lines.append(
            f"| {p.first} − {p.second} | {question} | {p.n_blocks} | {p.median_text} | "
            f"{p.interval_text('budget')} | {p.interval_text('settled')} | {p.mean_text} | "
            f"{p.effect_text} | {p.p_text()} | {p.p_text(holm=True)} |"
        )
    return lines


def _confirmations_table(verdict: Verdict) -> list[str]:
    lines = [
        "## Best configuration per placement, re-trained with fresh seeds",
        "",
        "Each placement's own tuned best (not a typical configuration, as in the blocks):",
        "",
        f"| placement | mean {verdict.metric} | sd over seeds | seeds | configuration |",
        "|---|---|---|---|---|",
    ]
    for c in verdict.confirmations:
        params = _params(c.params)
        if not c.kept:
            lines.append(f"| {c.placement} | – | – | 0 (each {c.lost}) | {params} |")
            continue
        away = f" ({c.left_out_text})" if c.left_out_text else ""
        sd = significant(c.std, 2) if c.ranked else too_few(len(c.kept), "seed")
        lines.append(
            f"| {c.placement} | {significant(c.mean)} | {sd} | {len(c.kept)}{away} | {params} |"
        )
    if verdict.seeds_note:
        lines += ["", f"{verdict.seeds_note}: one run per placement is not a mean to rank by."]
    return [*lines, ""]


def _inline(text: str) -> str:
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _html(markdown_text: str, folder: Path) -> str:
    """A self-contained page for MLflow's artifact viewer: real tables, plots inlined."""
    body: list[str] = []
    table: list[list[str]] = []

    def close_table() -> None:
        if not table:
            return
        head, *rows = table
        cells = "".join(f"<th>{_inline(c)}</th>" for c in head)
        trs = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
        body.append(f"<table><thead><tr>{cells}</tr></thead><tbody>{trs}</tbody></table>")
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
    plot_importance(verdict.importances, folder / PLOTS[3], verdict.importance_note)
    markdown_text = _markdown(study_name, verdict, search, dataset_line)
    (folder / "report.md").write_text(markdown_text)
    (folder / "report.html").write_text(_html(markdown_text, folder))
    return [folder / "report.md", folder / "report.html", *(folder / name for name in PLOTS)]


def write_sweep_report(folder: Path, title: str, verdict: AcrossVerdict) -> list[Path]:
    """The verdict across a sweep's datasets as ``report.md``, ``report.html`` and
    ``critical_difference.png`` in ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    plot = folder / "critical_difference.png"
    plot_critical_difference(verdict, plot)
    placements = verdict.placements
    lines = [
        f"# Placement across datasets: {title}",
        "",
        verdict.statement,
        "",
        verdict.bn_statement,
        "",
        f"Metric: final-epoch `{verdict.metric}`. A score is the median over the study's "
        "complete paired blocks; rank 1 is the best placement of that dataset.",
        "",
        "## Per study",
        "",
        "| study | does BN help? | before or after? | blocks | "
        + " | ".join(f"{p} score (rank)" for p in placements)
        + " | statement |",
        "|---|---|---|---|" + "---|" * len(placements) + "---|",
    ]
    sign = 1 if lower_is_better(verdict.metric) else -1
    for dataset in verdict.datasets:
        ordered = sorted(placements, key=lambda p: dataset.scores[p] * sign)
        cells = " | ".join(
            f"{'diverged' if abs(dataset.scores[p]) >= RUNAWAY else significant(dataset.scores[p])}"
            f" ({ordered.index(p) + 1})"
            for p in placements
        )
        v = dataset.verdict
        lines.append(
            f"| {dataset.study} | {v.bn.short or v.bn.outcome} | {v.placement.short} | "
            f"{v.n_blocks} | {cells} | {v.statement} |"
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
    """Both answers in a few words and the placement interval, for the start of a run's
    name: ``BN helps · before better -0.149 [-0.170, -0.101] · 8 blocks``."""
    pair, n = verdict.primary, verdict.n_blocks
    if verdict.no_ranking is not None:
        return f"not answered ({counted(n, 'block')})"
    no_bn = verdict.bn.outcome in (Outcome.INSUFFICIENT, Outcome.NOT_COMPARED)
    if no_bn and verdict.outcome == Outcome.INSUFFICIENT:
        return f"too few blocks ({counted(n, 'block')})"
    words = verdict.placement.short
    if pair is not None:
        low, high = pair.interval(verdict.until)
        if math.isfinite(low) and math.isfinite(high):
            words = (
                f"{words} {significant(pair.median, 3, True, True)} "
                f"[{significant(low, 3, True, True)}, {significant(high, 3, True, True)}]"
            )
    parts = [verdict.bn.short, words, counted(n, "block")]
    return " · ".join(part for part in parts if part)


def _best_per_placement(verdict: Verdict, table: Sequence[PlacementSummary]) -> list[str]:
    if not table:
        return []
    confirmations = {c.placement: c for c in verdict.confirmations}
    lines = [
        "| placement | trials | best val_loss | fresh seeds, mean ± sd | best configuration |",
        "|---|---|---|---|---|",
    ]
    for row in table:
        conf = confirmations.get(row.placement)
        seeds, params = "", ""
        if conf is not None:
            seeds = "no fresh-seed run completed"
            if conf.kept and not conf.ranked:
                seeds = f"{significant(conf.mean)} (1 seed: no sd)"
            elif conf.kept:
                seeds = f"{significant(conf.mean)} ± {significant(conf.std, 2)} ({len(conf.kept)})"
            params = _params(conf.params, 3)
        best = significant(row.best_val_loss)
        if not row.complete:  # a NaN here would read as a bug, not as what happened
            best = f"none completed ({row.failed} failed, {row.pruned} pruned)"
        lines.append(f"| {row.placement} | {row.complete} | {best} | {seeds} | {params} |")
    return [*lines, ""]


def run_note(study_name: str, verdict: Verdict, table: Sequence[PlacementSummary] = ()) -> str:
    """The parent run's description in MLflow: both answers first, in a few lines."""
    lines = [f"**{verdict.statement}**", ""]
    kind = "anytime-valid 95% interval" if verdict.until == "settled" else "95% CI"
    for question, answer, pairs in (
        ("Does BN help?", verdict.bn, [p for p in verdict.pairs if p.second == "none"]),
        ("Before or after?", verdict.placement, [verdict.primary] if verdict.primary else []),
    ):
        if not pairs or verdict.no_ranking is not None:
            continue
        each = "; ".join(
            f"{p.first} − {p.second}: median {p.median_text}, {kind} "
            f"{p.interval_text(verdict.until)}"
            for p in pairs
        )
        lines += [f"- {question} **{answer.words}**: {each}, {pairs[0].n_blocks} blocks.", ""]
    lines += [f"Metric final `{verdict.metric}`, threshold {verdict.threshold:g}.", ""]
    rule = (
        "until settled (stopped when the anytime-valid intervals answered "
        f"{quoted_questions(ASKED[verdict.question])}, or at the cap)"
        if verdict.until == "settled"
        else "fixed budget (the whole budget, looked at once)"
    )
    lines += [f"Rule: {rule}.", ""]
    if verdict.disagreements:
        lines += [*verdict.disagreements, ""]
    lines += _best_per_placement(verdict, table)
    lines.append(
        f"Report: `report.md` / `report.html` in this run's artifacts; rebuild it with "
        f"`python -m bnsearch report --study-name {study_name}`."
    )
    return "\n".join(lines)

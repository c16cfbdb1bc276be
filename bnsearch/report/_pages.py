"""A Verdict and its trials as PNG plots, ``report.md`` and a self-contained ``report.html``."""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

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

#: Each rule in a line (the run's note) and in a paragraph (the report).
_RULES = {
    "settled": (
        "until settled (stopped when the anytime-valid intervals answered {asked}, or at the cap)",
        "The study looked after every batch of blocks and stopped when the questions it asks "
        "(here: {asked}) were settled: the anytime-valid 95% confidence sequence of the median "
        "difference wholly beyond the threshold or wholly inside it; those sequences alone "
        "decide (the bootstrap intervals and p-values are shown for reference, they do not "
        "allow for the repeated looks). A BN placement beats `none` only when, in addition, the "
        "closed test over the BN placements names it (each set of BN placements tested by "
        "betting block by block on the one leading so far): the chance of naming any placement "
        "that does not beat `none` stays under 2.5%, with no alpha split.",
    ),
    "budget": (
        "fixed budget (the whole budget, looked at once)",
        "The whole budget was trained and looked at once: a placement is better than another "
        "when its bootstrap interval lies beyond the threshold and the Wilcoxon p, "
        "Holm-corrected across every pair (both questions' comparisons together, which handles "
        "the several BN placements against `none`), is below 0.05.",
    ),
}


def _rule(verdict: Verdict, long: bool) -> str:
    """The study's rule in a line, or (``long``) with why it may be read as it is."""
    short, paragraph = _RULES[verdict.until]
    text = f"Rule: {short.split(' (')[0]}. {paragraph}" if long else f"Rule: {short}."
    return text.format(asked=quoted_questions(ASKED[verdict.question]))


def _asked(question: str) -> str:
    """``Does BN help?``: the question at the start of a sentence."""
    return QUESTION_TEXT[question][0].upper() + QUESTION_TEXT[question][1:]


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A Markdown table, and the blank line after it."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return [*lines, *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def _paragraphs(*texts: str) -> list[str]:
    """Each text that is not empty, a paragraph."""
    return [line for text in texts if text for line in (text, "")]


def _params(params: dict, digits: int = 4) -> str:
    return ", ".join(
        f"{k}={significant(v, digits)}" if isinstance(v, float) else f"{k}={plain(v)}"
        for k, v in params.items()
        if k != "placement"
    )


# long because it is the report page itself, section after section.
def _markdown(study_name: str, v: Verdict, search: Sequence[TrialResult], dataset_line: str) -> str:
    answers = [f"{_asked(a.question)} {a.statement}" for a in v.answers]
    bold = [f"**{text.split(':')[0]}:**{text.split(':', 1)[1]}" for text in v.disagreements]
    lines = [f"# bnsearch report: {study_name}", "", dataset_line, "", "## Verdict", ""]
    lines += _paragraphs(
        f"**{v.headline}**", *([v.unanswered] if v.unanswered is not None else answers)
    )
    lines += _paragraphs(v.still_open, v.input_control, *bold)
    lines += _paragraphs(
        f"Metric: final-epoch `{v.metric}`; practical threshold {v.threshold:g}; "
        f"{counted(v.n_blocks, 'paired block')} (trials sharing every hyperparameter and the "
        "seed, differing only in placement).",
        _rule(v, long=True) if v.no_ranking is None else "",  # no rule decided anything else
    )
    if v.no_ranking is None:
        head = ["pair", "question", "blocks", "median diff", "95% CI (median)"]
        head += ["anytime-valid 95% CS", "mean diff", "d_z", "Wilcoxon p", "Holm p"]
        rows = [
            [f"{p.first} − {p.second}", QUESTION_TEXT.get(v.question_of(p) or "", ""),
             p.n_blocks, p.median_text, p.interval_text("budget"), p.interval_text("settled"),
             p.mean_text, p.effect_text, p.p_text(), p.p_text(holm=True)]
            for p in v.pairs
        ]  # fmt: skip
        lines += ["## Paired comparisons", "", *_table(head, rows)]
    excluded = ", ".join(f"{k}: {n}" for k, n in v.excluded_blocks.items())
    lost = ", ".join(f"{k}: {n}" for k, n in v.diverged_blocks.items() if n)
    lines += _paragraphs(
        f"Trials left out of the pairs (pruned, or failed by an exception): {excluded or 'none'}."
        " Trials that diverged (loss NaN or infinite), each counted as losing its block with the "
        f"worst loss a float32 holds: {lost or 'none'}."
    )
    if v.by_activation:
        lines += ["## Per activation", ""] + _paragraphs(
            "The study searched the activation; each block shares one, so the paired "
            "comparisons can be made within each activation:"
        )
        head = ["activation", "does BN help?", "before or after?", "pair", "blocks"]
        rows = []
        for activation, sub in v.by_activation.items():
            p, cells = sub.primary, ["", 0, "", ""]
            if p is not None:
                cells = [f"{p.first} − {p.second}", p.n_blocks, p.median_text]
                cells.append(p.interval_text(sub.until))
            rows.append([activation, sub.bn.outcome, sub.outcome, *cells])
        lines += _table([*head, "median diff", "interval"], rows)
    if v.confirmations and v.no_ranking is None:
        lines += _confirmations_table(v)
    if v.importances or v.importance_note:
        ranked = sorted(v.importances.items(), key=lambda kv: -kv[1])
        lines += ["## Hyperparameter importance (fANOVA, seeded)", ""]
        lines += [f"- {name}: {value:.3f}" for name, value in ranked]
        lines += [""] if ranked else [f"Left out: {v.importance_note}.", ""]
    lines += ["## All trials per placement", "", "```", format_table(summarize(search)), "```"]
    lines += ["", "## Plots", "", *(f"![{name}]({name})" for name in PLOTS)]
    return "\n".join(lines) + "\n"


def _confirmations_table(verdict: Verdict) -> list[str]:
    lines = _paragraphs(
        "## Best configuration per placement, re-trained with fresh seeds",
        "Each placement's own tuned best (not a typical configuration, as in the blocks):",
    )
    rows = []
    for c in verdict.confirmations:
        sd = significant(c.std, 2) if c.ranked else too_few(len(c.kept), "seed")
        away = "; ".join(c.left_out())
        cells = [significant(c.mean), sd, f"{len(c.kept)}" + f" ({away})" * bool(away)]
        if not c.kept:
            cells = ["–", "–", f"0 (each {c.lost})"]
        rows.append([c.placement, *cells, _params(c.params)])
    head = ["placement", f"mean {verdict.metric}", "sd over seeds", "seeds", "configuration"]
    lines += _table(head, rows)
    if verdict.seeds_note:
        lines += [f"{verdict.seeds_note}: one run per placement is not a mean to rank by.", ""]
    return lines


def _inline(text: str) -> str:
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


#: The page's look: tables with rules, long verdict lines wrapped.
_STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em;"
    "overflow-wrap:anywhere}table{border-collapse:collapse;margin:0.5em 0;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:0.2em 0.5em;text-align:left}"
    "th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3}"
)


def _html(markdown_text: str, folder: Path) -> str:
    """A self-contained page for MLflow's artifact viewer: real tables, plots inlined."""
    body: list[str] = []
    table: list[str] = []  # each row's cells in HTML, the head first
    for line in [*markdown_text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):  # not the |---| rule
                tag = "td" if table else "th"
                table.append("".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells))
            continue
        if table:  # the table ends here
            (head, *rows), table = table, []
            trs = "".join(f"<tr>{row}</tr>" for row in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
        if line.startswith("![") and line.endswith(")"):
            png = line[line.index("(") + 1 : -1]
            data = base64.b64encode((folder / png).read_bytes()).decode()
            body.append(f'<p><img alt="{html.escape(png)}" src="data:image/png;base64,{data}"></p>')
        elif line.startswith(("# ", "## ")):
            level = line.index(" ")
            body.append(f"<h{level}>{_inline(line[level + 1 :])}</h{level}>")
        elif line.startswith(("* ", "- ")):
            body.append(f"<ul><li>{_inline(line[2:])}</li></ul>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>bnsearch report</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


def _write_pages(folder: Path, markdown_text: str) -> list[Path]:
    (folder / "report.md").write_text(markdown_text)
    (folder / "report.html").write_text(_html(markdown_text, folder))
    return [folder / "report.md", folder / "report.html"]


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
    pages = _write_pages(folder, _markdown(study_name, verdict, search, dataset_line))
    return [*pages, *(folder / name for name in PLOTS)]


def write_sweep_report(folder: Path, title: str, verdict: AcrossVerdict) -> list[Path]:
    """The verdict across a sweep's datasets as ``report.md``, ``report.html`` and
    ``critical_difference.png`` in ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    plot = folder / "critical_difference.png"
    plot_critical_difference(verdict, plot)
    placements, sign = verdict.placements, 1 if lower_is_better(verdict.metric) else -1
    lines = [f"# Placement across datasets: {title}", ""]
    lines += _paragraphs(
        verdict.statement,
        verdict.bn_statement,
        f"Metric: final-epoch `{verdict.metric}`. A score is the median over the study's "
        "complete paired blocks; rank 1 is the best placement of that dataset.",
    )
    rows = []
    for dataset in verdict.datasets:
        scores, v = dataset.scores, dataset.verdict
        ordered = sorted(placements, key=lambda p: scores[p] * sign)
        cells = [
            f"{'diverged' if abs(scores[p]) >= RUNAWAY else significant(scores[p])}"
            f" ({ordered.index(p) + 1})"
            for p in placements
        ]
        rows.append([dataset.study, v.bn.short, v.placement.short, v.n_blocks, *cells, v.statement])
    head = ["study", "does BN help?", "before or after?", "blocks"]
    lines += ["## Per study", "", *_table([*head, *(f"{p} score (rank)" for p in placements),
                                           "statement"], rows)]  # fmt: skip
    ranks = ", ".join(f"{p} {verdict.mean_ranks[p]:.2f}" for p in placements)
    lines += ["## Mean ranks and pairs", "", f"Mean rank: {ranks}.", ""]
    head = ["pair", "datasets", "first better in", "second better in", "Wilcoxon p", "Holm p"]
    rows = [
        [f"{p.first} − {p.second}", p.datasets, p.first_better, p.second_better,
         f"{p.p_value:.3g}", f"{p.p_holm:.3g}"]
        for p in verdict.pairs
    ]  # fmt: skip
    lines += [*_table(head, rows), f"![critical difference]({plot.name})", ""]
    return [*_write_pages(folder, "\n".join(lines)), plot]


def outcome_label(verdict: Verdict) -> str:
    """Both answers in a few words and the placement interval, for the start of a run's
    name: ``BN helps · before better -0.149 [-0.170, -0.101] · 8 blocks``."""
    pair, blocks = verdict.primary, counted(verdict.n_blocks, "block")
    if verdict.no_ranking is not None:
        return f"not answered ({blocks})"
    no_bn = verdict.bn.outcome in (Outcome.INSUFFICIENT, Outcome.NOT_COMPARED)
    if no_bn and verdict.outcome == Outcome.INSUFFICIENT:
        return f"too few blocks ({blocks})"
    words = verdict.placement.short
    low, high = pair.interval(verdict.until) if pair else (math.nan, math.nan)
    if pair is not None and math.isfinite(low) and math.isfinite(high):
        numbers = [significant(x, 3, True, True) for x in (pair.median, low, high)]
        words += " {} [{}, {}]".format(*numbers)
    bn = verdict.bn.short if verdict.bn.outcome != Outcome.NOT_COMPARED else ""
    return " · ".join(part for part in (bn, words, blocks) if part)


def _best_per_placement(verdict: Verdict, table: Sequence[PlacementSummary]) -> list[str]:
    confirmations = {c.placement: c for c in verdict.confirmations}
    rows = []
    for row in table:
        c = confirmations.get(row.placement)
        seeds = "no fresh-seed run completed" if c else ""
        if c and c.kept:
            seeds = c.mean_sd + (f" ({len(c.kept)})" if c.ranked else " (1 seed: no sd)")
        best = significant(row.best_val_loss)
        if not row.complete:  # a NaN here would read as a bug, not as what happened
            best = f"none completed ({row.failed} failed, {row.pruned} pruned)"
        rows.append([row.placement, row.complete, best, seeds, _params(c.params, 3) if c else ""])
    head = ["placement", "trials", "best val_loss", "fresh seeds, mean ± sd", "best configuration"]
    return _table(head, rows) if table else []


def run_note(study_name: str, verdict: Verdict, table: Sequence[PlacementSummary] = ()) -> str:
    """The parent run's description in MLflow: both answers first, in a few lines."""
    lines = [f"**{verdict.statement}**", ""]
    pairs = {"bn": [p for p in verdict.pairs if p.second == "none"], "placement": []}
    pairs["placement"] = [verdict.primary] if verdict.primary else []
    for answer in verdict.answers:
        if pairs[answer.question] and verdict.no_ranking is None:
            each = "; ".join(p.brief(verdict.until) for p in pairs[answer.question])
            n = pairs[answer.question][0].n_blocks
            lines += [f"- {_asked(answer.question)} **{answer.words}**: {each}, {n} blocks.", ""]
    lines += [f"Metric final `{verdict.metric}`, threshold {verdict.threshold:g}.", ""]
    lines += _paragraphs(_rule(verdict, long=False), *verdict.disagreements)
    lines += _best_per_placement(verdict, table)
    lines.append(
        f"Report: `report.md` / `report.html` in this run's artifacts; rebuild it with "
        f"`python -m bnsearch report --study-name {study_name}`."
    )
    return "\n".join(lines)

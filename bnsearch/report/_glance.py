"""The verdict as the terminal shows it, at a glance or (``--verbose``) every statistic, in
plain ASCII lines of at most :data:`WIDTH` characters."""

from __future__ import annotations

import math
import textwrap

from bnsearch.stats import (
    QUESTION_TEXT,
    RUNAWAY,
    Outcome,
    PairComparison,
    Side,
    Verdict,
    counted,
    difference_text,
    loss_text,
    significant,
)
from bnsearch.trial import lower_is_better

#: The widest line bnsearch prints at the end of a study (a terminal's 100 columns).
WIDTH = 100

# Typeset characters of the report pages and their plain-text forms, so terminal output can
# be searched with grep and pasted anywhere.
_TYPESET = "−–—“”‘’±×…≥≤→·δ≈"
_PLAIN = ["-", "-", "-", '"', '"', "'", "'", "+-", "x", "...", ">=", "<=", "->", "|", "delta", "~"]
_ASCII = str.maketrans(dict(zip(_TYPESET, _PLAIN, strict=True)))


def plain_ascii(text: str) -> str:
    """``text`` with its typeset characters spelled in ASCII (any other becomes ``?``)."""
    return text.translate(_ASCII).encode("ascii", "replace").decode("ascii")


def _fit(line: str) -> str:
    line = plain_ascii(line).rstrip()
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."


def _wrap(text: str, indent: str = "") -> list[str]:
    """``text`` in ASCII lines of at most :data:`WIDTH`, the later ones indented two more."""
    return textwrap.wrap(
        plain_ascii(text), WIDTH, initial_indent=indent, subsequent_indent=indent + "  ",
        break_long_words=False, break_on_hyphens=False,
    )  # fmt: skip


def _number(value: float) -> str:
    """A difference or a bound; ``n/a`` for NaN, an unbounded end or a run-away."""
    if not math.isfinite(value) or abs(value) >= RUNAWAY:
        return "n/a"
    return difference_text(value)


def _decision(verdict: Verdict, pair: PairComparison) -> str:
    """The study's rule on ``first - second`` in two or three words, whatever the metric."""
    if pair is verdict.primary and verdict.placement.outcome == Outcome.INSUFFICIENT:
        return "too few blocks"
    side = verdict.bn.sides.get(pair.first) if pair.second == "none" else None
    if side is None:
        side = pair.side(verdict.until, verdict.threshold)
        side = side if lower_is_better(verdict.metric) else side.flipped
    better = f"{pair.first if side is Side.BELOW else pair.second} better"
    return {Side.OPEN: "open", Side.INSIDE: "no effect"}.get(side, better)


def _notice(verdict: Verdict) -> str | None:
    """The one notice worth a line, the most important first."""
    if verdict.still_open:
        return "not settled yet: run the study again to add blocks"
    control = verdict.control
    if control is not None and control.decided and control.outcome != verdict.placement.outcome:
        return f"'{verdict.placement.outcome}' does not beat BN on the inputs alone ('input')"
    if verdict.disagreements:
        return "the fresh-seed ranking of the best configurations differs from the blocks'"
    lost = ", ".join(f"{p} {n}" for p, n in verdict.diverged_blocks.items() if n)
    return f"diverged trials, each losing its block: {lost}" if lost else None


def _confirmed(verdict: Verdict) -> list[str]:
    """One row per placement's best configuration re-trained with fresh seeds."""
    if not verdict.confirmations:
        return []
    seeds = max(len(c.values) + c.failed for c in verdict.confirmations)
    note = f" ({verdict.seeds_note})" if verdict.seeds_note else ""
    over = f"{verdict.metric} over {counted(seeds, 'fresh seed')}{note}"
    lines = ["", f"  {'confirmed best':<22s}{over}"]
    for conf in verdict.confirmations:
        shown = loss_text(conf.mean) + f" +- {significant(conf.std, 2)}" * conf.ranked
        if not conf.kept:
            shown = "no fresh-seed run completed"
        elif len(conf.kept) < seeds:
            shown += f" ({', '.join([f'n={len(conf.kept)}', *conf.left_out('')])})"
        lines.append(f"  {conf.placement:<22s}{shown}")
    return lines


def verdict_glance(verdict: Verdict) -> list[str]:
    """A headline with both answers, one row per comparison that answers them, one per
    placement's confirmed best and at most one notice: what a study, ``report`` and
    ``sweep --verbose`` print at the end."""
    if verdict.unpaired is not None:
        return ["Verdict:", *_wrap(verdict.unpaired, "  ")]
    if verdict.no_ranking is not None:  # no comparison, no decision, no confirmation ranking
        return [
            f"Verdict: {verdict.words} ({counted(verdict.n_blocks, 'block')})",
            *_wrap(verdict.no_ranking, "  "),
        ]
    how = verdict.reached
    if verdict.until == "settled" and not verdict.settled:
        still = " and ".join(QUESTION_TEXT[q].rstrip("?") for q in verdict.open_questions)
        how += f" ({still}: open)"
    rule = "lower" if lower_is_better(verdict.metric) else "higher"
    lines = _wrap(f"Verdict: {verdict.words.replace('`', '')}")
    lines += _wrap(
        f"{how}; final {verdict.metric}, {rule} is better; threshold {verdict.threshold:g}", "  "
    )
    kind = "anytime-valid 95% CS" if verdict.until == "settled" else "bootstrap 95% CI"
    lines.append(f"  {'comparison':<22s}{'median':>10s}  {kind:<26s}decision")
    for pair in filter(verdict.question_of, verdict.pairs):  # those answering the questions
        interval = pair.interval_text(verdict.until)  # the interval the rule decides by
        if interval.startswith("["):  # a run-away end reads n/a
            low, high = pair.interval(verdict.until)
            interval = f"[{_number(low)}, {_number(high)}]"
        name = f"{pair.first} - {pair.second}"
        lines.append(
            f"  {name:<22s}{_number(pair.median):>10s}  {interval:<26s}{_decision(verdict, pair)}"
        )
    lines += _confirmed(verdict)
    if notice := _notice(verdict):  # in one line, the pointer to the details shortened first
        note = f"Note: {plain_ascii(notice)}"
        more = (" (more in report.md / --verbose)", " (more: --verbose)")
        lines.append(next((note + m for m in more if len(note + m) <= WIDTH), note))
    return [_fit(line) for line in lines]


def verdict_details(verdict: Verdict) -> list[str]:
    """:meth:`~bnsearch.stats.Verdict.summary_lines` as ``--verbose`` prints it: wrapped,
    without backticks."""
    lines = []
    for line in verdict.summary_lines():
        indent = line[: len(line) - len(line.lstrip())]
        lines += _wrap(line.strip().replace("`", ""), indent) or [""]
    return lines

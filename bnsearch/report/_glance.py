"""The verdict as the terminal shows it: read at a glance, plain ASCII, lines of at most
:data:`WIDTH` characters.

A headline with both answers; one row per comparison (the median paired difference, the
interval the study's rule decides by, the decision); one row per placement's confirmed best;
at most one line of notices. The full statistics (bootstrap interval, Wilcoxon with Holm's
correction, d_z, importances, per-activation answers, the confirmation-versus-blocks
discussion) are :func:`verdict_details`, printed with ``--verbose`` and always in
``report.md``.
"""

from __future__ import annotations

import math
import statistics
import textwrap

from bnsearch.stats import (
    PairComparison,
    Verdict,
    budget_side,
    loss_text,
    settle,
    significant,
)
from bnsearch.trial import lower_is_better

__all__ = ["WIDTH", "plain_ascii", "verdict_details", "verdict_glance"]

#: The widest line bnsearch prints at the end of a study (a terminal's 100 columns).
WIDTH = 100

# Typeset characters of the report pages and their plain-text forms, so terminal output can
# be searched with grep and pasted anywhere.
_ASCII = str.maketrans(
    {
        "−": "-",
        "–": "-",
        "—": "-",
        "“": '"',
        "”": '"',
        "‘": "'",
        "’": "'",
        "±": "+-",
        "×": "x",
        "…": "...",
        "≥": ">=",
        "≤": "<=",
        "→": "->",
        "·": "|",
        "δ": "delta",
        "≈": "~",
    }
)


def plain_ascii(text: str) -> str:
    """``text`` with its typeset characters spelled in ASCII (anything else left becomes
    ``?``)."""
    return text.translate(_ASCII).encode("ascii", "replace").decode("ascii")


def _fit(line: str) -> str:
    line = plain_ascii(line).rstrip()
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."


def _number(value: float) -> str:
    """A difference or bound; one from a diverged trial's sentinel reads ``+inf``/``-inf``
    (:func:`~bnsearch.stats.significant`), a missing one ``n/a``."""
    return "n/a" if math.isnan(value) else significant(value, 4, signed=True)


def _side(verdict: Verdict, pair: PairComparison) -> str | None:
    low, high = pair.interval(verdict.until)
    if verdict.until == "settled":
        return None if math.isinf(low) or math.isinf(high) else settle(low, high, verdict.threshold)
    return budget_side(pair, verdict.threshold) if pair.n_blocks >= 3 else None


def _decision(verdict: Verdict, pair: PairComparison) -> str:
    """What the study's rule says of ``first - second``, in two or three words."""
    if pair is verdict.primary and verdict.placement.outcome == "insufficient":
        return "too few blocks"
    if pair.second == "none" and pair.first in verdict.bn.sides:
        side = {"better": "below", "worse": "above", "equal": "inside"}.get(
            verdict.bn.sides[pair.first] or ""
        )
        if side and not lower_is_better(verdict.metric) and side != "inside":
            side = "above" if side == "below" else "below"
    else:
        side = _side(verdict, pair)
    if side is None:
        return "open"
    if side == "inside":
        return "no effect"
    first_better = (side == "below") == lower_is_better(verdict.metric)
    return f"{pair.first if first_better else pair.second} better"


def _how(verdict: Verdict) -> str:
    if verdict.until != "settled":
        return f"{verdict.n_blocks} blocks, fixed budget"
    if verdict.settled:
        return f"settled after {verdict.n_blocks} blocks"
    still = " and ".join({"bn": "does BN help", "placement": "before or after"}[q]
                         for q in verdict.open_questions)  # fmt: skip
    return f"not settled within {verdict.n_blocks} blocks ({still}: open)"


def _notice(verdict: Verdict) -> str | None:
    """The one notice worth a line, shortened; the rest is in the details."""
    if verdict.still_open:
        return "run the study again to add blocks (it resumes and stops once settled)"
    control = verdict.input_control
    if control and "does not survive" in control:
        return f"'{verdict.placement.outcome}' does not beat BN on the inputs alone ('input')"
    if verdict.disagreements:
        return "the fresh-seed ranking differs from the blocks'"
    lost = {p: n for p, n in verdict.diverged_blocks.items() if n}
    if lost:
        counts = ", ".join(f"{p} {n}" for p, n in lost.items())
        return f"diverged trials, each counted as losing its block: {counts}"
    return None


def verdict_glance(verdict: Verdict) -> list[str]:
    """The verdict in at most a dozen short ASCII lines (see the module docstring)."""
    words = "; ".join(a.words for a in verdict.answers if a.outcome != "not-compared")
    head = [f"Verdict: {words.replace('`', '')}"]
    rule = "lower" if lower_is_better(verdict.metric) else "higher"
    head.append(
        f"  {_how(verdict)}; final {verdict.metric}, {rule} is better; "
        f"threshold {verdict.threshold:g}"
    )
    if verdict.unpaired is not None:
        why = plain_ascii(verdict.unpaired)
        return ["Verdict:", *textwrap.wrap(why, WIDTH, initial_indent="  ", subsequent_indent="  ")]
    kind = "anytime-valid 95% CS" if verdict.until == "settled" else "bootstrap 95% CI"
    lines = head + ["", f"  {'comparison':<22s}{'median':>10s}  {kind:<26s}decision"]
    for pair in verdict.pairs:
        low, high = pair.interval(verdict.until)
        interval = f"[{_number(low)}, {_number(high)}]"
        name = f"{pair.first} - {pair.second}"
        lines.append(
            f"  {name:<22s}{_number(pair.median):>10s}  {interval:<26s}{_decision(verdict, pair)}"
        )
    confirmed = list(verdict.confirmations)
    if confirmed:
        seeds = max(len(c.values) for c in confirmed)
        lines += ["", f"  {'confirmed best':<22s}{verdict.metric} over {seeds} fresh seeds"]
        for conf in confirmed:
            values = [v for v in conf.values if abs(v) < 1e20]  # not a run-away loss
            if not values:
                shown = "no fresh-seed run completed"
            elif len(values) == 1:
                shown = f"{loss_text(values[0])} (one seed)"
            else:
                mean, sd = statistics.fmean(values), statistics.stdev(values)
                shown = f"{loss_text(mean)} +- {significant(sd, 2)}"
                if len(values) < len(conf.values):
                    shown += f" ({len(conf.values) - len(values)} ran away)"
            lines.append(f"  {conf.placement:<22s}{shown}")
    notice = _notice(verdict)
    if notice:
        lines.append(f"Note: {notice} (more: --verbose, report.md)")
    return [_fit(line) for line in lines]


def verdict_details(verdict: Verdict) -> list[str]:
    """Every statistic of the verdict (``--verbose``): each line in ASCII, long lines kept
    whole (they are for reading, not for a glance)."""
    return [plain_ascii(line) for line in verdict.summary_lines()]

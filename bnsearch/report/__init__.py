"""What a person reads: the terminal summary, report pages, plots and run notes."""

from __future__ import annotations

from bnsearch.report._glance import WIDTH, plain_ascii, verdict_details, verdict_glance
from bnsearch.report._pages import outcome_label, run_note, write_report, write_sweep_report
from bnsearch.report._summary import (
    PlacementSummary,
    Progress,
    format_table,
    summarize,
    table_metrics,
)

__all__ = [
    "WIDTH",
    "PlacementSummary",
    "Progress",
    "format_table",
    "outcome_label",
    "plain_ascii",
    "run_note",
    "summarize",
    "table_metrics",
    "verdict_details",
    "verdict_glance",
    "write_report",
    "write_sweep_report",
]

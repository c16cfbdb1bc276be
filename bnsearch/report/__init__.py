"""What a person reads: the terminal summary, report pages, plots and run notes."""

from __future__ import annotations

from bnsearch.report._glance import WIDTH, plain_ascii, verdict_details, verdict_glance
from bnsearch.report._pages import PLOTS, outcome_label, run_note, write_report, write_sweep_report
from bnsearch.report._plots import plot_critical_difference
from bnsearch.report._summary import (
    PlacementSummary,
    Progress,
    format_table,
    summarize,
    table_metrics,
)

__all__ = [
    "PLOTS",
    "WIDTH",
    "PlacementSummary",
    "Progress",
    "format_table",
    "outcome_label",
    "plain_ascii",
    "plot_critical_difference",
    "run_note",
    "summarize",
    "table_metrics",
    "verdict_details",
    "verdict_glance",
    "write_report",
    "write_sweep_report",
]

"""What a person reads: the terminal summary, report pages, plots and run notes."""

from __future__ import annotations

from bnsearch.report._pages import (
    PLOTS,
    outcome_label,
    run_note,
    write_report,
    write_sweep_report,
)
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
    "PlacementSummary",
    "Progress",
    "format_table",
    "outcome_label",
    "plot_critical_difference",
    "run_note",
    "summarize",
    "table_metrics",
    "write_report",
    "write_sweep_report",
]

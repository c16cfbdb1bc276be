"""The verdict across a sweep's studies (:mod:`bnsearch.stats`), reported and logged to its
own MLflow run; trains nothing, and leaves out a study that has not run yet."""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

from bnsearch._redact import redact_url
from bnsearch.backends import read_study
from bnsearch.config import StudyConfig
from bnsearch.errors import ConfigError
from bnsearch.report import WIDTH, plain_ascii, write_sweep_report
from bnsearch.stats import AcrossVerdict, compare_across, dataset_scores
from bnsearch.study import verdict_of
from bnsearch.tracking import MlflowTracker, run_name
from bnsearch.trial import keys


def report_sweep(
    folder: Path,
    configs: Sequence[StudyConfig],
    tracking_uri: str,
    out_dir: Path | None = None,
) -> AcrossVerdict:
    """One verdict over the studies of ``configs`` (the folder's study files), printed,
    written to ``out_dir`` (if given) and logged to a run of experiment ``sweep-<folder>``."""
    scored = []
    metrics = set()
    for config in configs:
        try:
            store = read_study(config)
            results = store.stored_trials().results
        except ConfigError:
            print(f"sweep verdict: {config.resolved_study_name}: not run yet; left out")
            continue
        verdict = verdict_of(config, results, no_ranking_reason=store.no_ranking_reason)
        scored.append(dataset_scores(config.resolved_study_name, verdict, results))
        metrics.add(config.metric)
    metric = metrics.pop() if len(metrics) == 1 else "each study's metric"
    across = compare_across(scored, metric)
    title, experiment = str(folder), f"sweep-{folder.resolve().name or 'root'}"
    tracker = MlflowTracker(tracking_uri, experiment)
    tracker.start_study_run(
        run_name=run_name("sweep-report"),
        params={"folder": title, "studies": len(across.datasets), "metric": metric},
        tags={keys.KIND: "sweep-report"},
    )
    with tracker.study_run_guard():
        with tempfile.TemporaryDirectory(prefix="bnsearch-sweep-") as scratch:
            files = write_sweep_report(out_dir or Path(scratch), title, across)
            for path in files:
                tracker.log_artifact(path)
        ranks = {f"mean_rank.{p}": rank for p, rank in across.mean_ranks.items()}
        values = {**ranks, "friedman_p": across.friedman_p, "datasets": float(len(across.datasets))}
        tags = {keys.VERDICT_TEXT: across.statement, keys.VERDICT_BN_TEXT: across.bn_statement}
        tracker.end_study_run(metrics=values, tags=tags)
    where = f"{out_dir}/report.html" if out_dir else "the run's artifacts"
    for text in (
        f"Verdict across datasets: {across.statement}",
        across.bn_statement,
        f"sweep report in {where}; MLflow experiment {experiment!r} at {redact_url(tracking_uri)}",
    ):
        for line in textwrap.wrap(plain_ascii(text), WIDTH, subsequent_indent="  "):
            print(line, flush=True)
    return across

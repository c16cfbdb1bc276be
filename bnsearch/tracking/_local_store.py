"""The local MLflow: moving a SQLite store's artifact paths after its folder moved (the one
place that writes MLflow's private schema), and opening MLflow's UI on a study."""

from __future__ import annotations

import contextlib
from pathlib import Path

from bnsearch._reachable import sqlite_path

# Where each table of MLflow's SQLite store keeps an artifact path.
_ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)


def relocate_artifacts(tracking_uri: str) -> int:
    """Point each experiment whose artifact folder is gone at ``artifacts/<study>`` beside the
    moved database (MLflow stores absolute paths); how many experiments moved."""
    import sqlite3
    import urllib.parse

    db_path = sqlite_path(tracking_uri)
    if db_path is None or not db_path.exists():
        return 0
    here = (db_path.parent / "artifacts").resolve()
    moved = 0
    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        tables = {row[0] for row in db.execute("select name from sqlite_master")}
        if "experiments" not in tables:
            return 0
        for (location,) in db.execute("select artifact_location from experiments").fetchall():
            if not (location or "").startswith("file://"):
                continue
            old = Path(urllib.parse.unquote(urllib.parse.urlparse(location).path))
            new = here / old.name
            if old.exists() or old.parent.name != "artifacts" or not new.is_dir():
                continue
            target = new.as_uri()
            for table, column in _ARTIFACT_COLUMNS:
                if table in tables:
                    db.execute(
                        # The folder itself or below it: not a sibling such as study2.
                        f"update {table} set {column} = ? || substr({column}, ?) "  # noqa: S608
                        f"where {column} = ? or substr({column}, 1, ?) = ?",
                        (target, len(location) + 1, location, len(location) + 1, location + "/"),
                    )
            moved += 1
    return moved


def ui_command(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The MLflow UI on ``tracking_uri``, with one web worker (not MLflow's four)."""
    flags = {"--backend-store-uri": tracking_uri, "--host": host, "--port": port, "--workers": 1}
    return ["mlflow", "ui", *(str(part) for flag in flags.items() for part in flag)]


def ui_environment() -> dict[str, str]:
    """Environment for :func:`ui_command`: no job runner (it serves GenAI jobs only)."""
    return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def runs_url(experiment_id: str, host: str = "127.0.0.1", port: int = 5000) -> str:
    """The UI's runs table of one experiment (``workflowType``: not MLflow 3's GenAI overview)."""
    return f"http://{host}:{port}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"

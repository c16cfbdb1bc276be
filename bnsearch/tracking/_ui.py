"""How to open MLflow's UI on a study: the command, its environment and the runs URL."""

from __future__ import annotations


def ui_command(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The command that opens the MLflow UI on ``tracking_uri`` with one web worker (MLflow's
    default is four processes)."""
    return [
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def ui_environment() -> dict[str, str]:
    """Environment for :func:`ui_command`: no job runner (it serves GenAI jobs only)."""
    return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def runs_url(experiment_id: str, host: str = "127.0.0.1", port: int = 5000) -> str:
    """The UI's runs table of one experiment. ``workflowType=machine_learning`` opens it as
    a model-training experiment even in a browser that has never chosen, where MLflow 3
    would show its GenAI overview (traces, no runs)."""
    return f"http://{host}:{port}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"

"""A real ``mlflow server`` process for the tests that need one, which they may pause
(SIGSTOP), kill (SIGKILL) and start again on the same port and store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ports import free_port


class MlflowServer:
    """``mlflow server`` on ``backend_store`` at http://127.0.0.1:<port>."""

    def __init__(self, backend_store: str, folder: Path, port: int | None = None) -> None:
        self.backend_store = backend_store
        self.folder = folder
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> MlflowServer:
        log = open(self.folder / "server.log", "a")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--backend-store-uri",
                self.backend_store,
                "--artifacts-destination",
                str(self.folder / "artifacts"),
                "--workers",
                "1",
            ],  # fmt: skip
            cwd=self.folder,
            # MLflow 3's job runner (several huey_consumer processes) is never used here.
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.3)
        self.kill()
        pytest.fail("mlflow server did not start: " + (self.folder / "server.log").read_text())

    def signal(self, number: int) -> None:
        """Send ``number`` to the server and its worker processes."""
        assert self.process is not None
        os.killpg(self.process.pid, number)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        # The workers of a killed server die with their session leader's group signal.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                return
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

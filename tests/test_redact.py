"""No password from a storage or tracking URL reaches an output."""

from __future__ import annotations

import pytest

from bnsearch._redact import redact_text, redact_url

CANARY = "Canary-pw-7731"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://user:{CANARY}@db:5432/optuna", "postgresql://user:***@db:5432/optuna"),
        (
            "postgresql://u:p@ss/w:rd@db/x?sslmode=require",
            "postgresql://u:***@db/x?sslmode=require",
        ),
        (f"http://mlflow:5000/?password={CANARY}&x=1", "http://mlflow:5000/?password=***&x=1"),
        (f"https://host/api?token={CANARY}", "https://host/api?token=***"),
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://postgres@127.0.0.1:5432/test"),
        ("sqlite:///mlruns/optuna.db", "sqlite:///mlruns/optuna.db"),
    ],
)
def test_passwords_in_the_user_part_and_the_query_are_hidden(url, shown):
    assert redact_url(url) == shown


def test_a_message_quoting_the_url_or_the_bare_password_is_cleaned():
    url = f"postgresql://u:{CANARY}@db/x"
    message = f'connection to {url} failed: password "{CANARY}" rejected'
    cleaned = redact_text(message, [url])
    assert CANARY not in cleaned and "postgresql://u:***@db/x" in cleaned


def _files_holding(folder, secret: str) -> list[str]:
    return [
        str(path)
        for path in folder.rglob("*")
        if path.is_file() and path.name != "server.log" and secret.encode() in path.read_bytes()
    ]


@pytest.mark.server
@pytest.mark.slow
def test_a_canary_password_in_both_urls_appears_in_no_output_log_store_or_report(
    tmp_path, tiny_csv, cli
):
    """Study, sweep (logging as the README's cron line does), report and sync against a real
    PostgreSQL storage and a real MLflow server, both URLs carrying the canary, each as its
    own ``python -m bnsearch`` process; then a study refused by each store, in this process
    (``cli.main``: the refusal's one line is printed by ``main``; as processes, each would
    import TensorFlow only to be refused). Every output stream, the sweep log, the MLflow
    store (params, tags, artifacts: the server's SQLite file and folder, byte for byte), the
    Optuna study's attributes and every file written are searched for it."""
    import subprocess
    import sys

    import optuna

    from tests._mlflow_server import MlflowServer
    from tests._postgres import fresh_database, postgres_available

    if not postgres_available():
        pytest.skip("needs PostgreSQL")
    server_folder = tmp_path / "server"
    server_folder.mkdir()
    work = tmp_path / "work"
    (work / "sweep").mkdir(parents=True)
    server = MlflowServer(f"sqlite:///{server_folder / 'mlflow.db'}", server_folder).start()
    for database in fresh_database():
        storage = database.replace("postgres@", f"postgres:{CANARY}@")
        tracking = server.uri.replace("http://", f"http://bn:{CANARY}@")
        (work / "sweep" / "canary.toml").write_text(
            f'name = "canary"\ndata = "{tiny_csv}"\ntarget = "label"\nn_trials = 3\n'
            "confirm_seeds = 0\n[network]\nepochs = 1\nhidden_units = [4]\n"
        )
        common = ["--storage", storage, "--tracking-uri", tracking]
        commands = [
            ["study", "sweep/canary.toml", "--n-trials", "6", *common],
            ["sweep", "sweep", *common],
            ["report", "--study-name", "canary", "--out", "report", *common],
            ["sync", "--study-name", "canary", *common],
        ]
        refused = [
            ["study", "--storage", f"postgresql://bn:{CANARY}@127.0.0.1:1/x", "--tracking-uri",
             tracking],
            ["study", "--tracking-uri", f"http://bn:{CANARY}@127.0.0.1:1/"],
        ]  # fmt: skip
        outputs = []
        try:
            with open(work / "sweep.log", "w") as log:
                for args in commands:
                    done = subprocess.run(
                        [sys.executable, "-m", "bnsearch", *args], cwd=work, text=True,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600,
                    )  # fmt: skip
                    log.write(done.stdout)
                    outputs.append((args[0], done.returncode, done.stdout))
                for args in refused:
                    result = cli(*args, cwd=work)
                    log.write(result.stdout + result.stderr)
                    outputs.append((args[0], result.returncode, result.stdout + result.stderr))
        finally:
            server.stop()
        codes = [code for _, code, _ in outputs]
        assert codes == [0, 0, 0, 0, 2, 2], outputs
        assert "***" in outputs[0][2]  # the URLs are shown, redacted
        for command, _, text in outputs:
            assert CANARY not in text, (command, text)
        study = optuna.load_study(study_name="canary", storage=database)
        attributes = [study.user_attrs]
        attributes += [t.user_attrs for t in study.trials] + [t.system_attrs for t in study.trials]
        assert CANARY not in repr(attributes)
        assert _files_holding(tmp_path, CANARY) == []

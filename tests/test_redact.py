"""No password from a storage or tracking URL reaches an output."""

from __future__ import annotations

import pytest

from bnsearch.redact import redact_text, redact_url

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

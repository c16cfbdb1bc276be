"""PostgreSQL for the tests that need it: the server at $BNSEARCH_TEST_POSTGRES (default
the local one, trust auth, database ``test``) and a fresh database per use."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES = os.environ.get("BNSEARCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_available() -> bool:
    try:
        import sqlalchemy

        sqlalchemy.create_engine(POSTGRES, connect_args={"connect_timeout": 30}).connect().close()
    except Exception:  # noqa: BLE001 - any failure means the same: no server to test against
        return False
    return True


needs_postgres = pytest.mark.skipif(
    not postgres_available(), reason="needs PostgreSQL at " + POSTGRES
)


def fresh_database() -> Iterator[str]:
    import sqlalchemy

    name = f"bnsearch_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

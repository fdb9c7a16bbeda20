"""How the PostgreSQL state is named in messages: never with its password."""

from __future__ import annotations

import pytest

from autoscaler.adapters.state.pg import Connector, PostgresSettings
from autoscaler.config.state import is_postgres


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        pytest.param(
            "postgresql://ops:s3cret-pw@db.internal:5433/scaling",
            "postgresql://ops@db.internal:5433/scaling",
            id="uri",
        ),
        pytest.param(
            "host=db.internal user=ops password=s3cret-pw dbname=scaling",
            "postgresql://ops@db.internal/scaling",
            id="key-value",
        ),
        pytest.param("postgresql://", "postgresql://(PGHOST)/(PGDATABASE)", id="all-from-env"),
    ],
)
def test_the_database_is_named_without_its_password(dsn: str, shown: str) -> None:
    assert PostgresSettings(dsn=dsn).describe() == shown


def test_a_password_is_masked_in_driver_errors_even_in_an_unparsable_string() -> None:
    connector = Connector(PostgresSettings(dsn="host=db password=s3cret-pw", password="file-pw"))
    texts = [
        'missing "=" after "x" in connection info string "host=db password=s3cret-pw x"',
        "password authentication failed (file-pw)",
        "could not parse postgresql://ops:other-pw@db/x",
        "password = 'quoted pw' was refused",
    ]
    masked = " | ".join(connector.safe(t) for t in texts)
    for secret in ("s3cret-pw", "file-pw", "other-pw", "quoted pw"):
        assert secret not in masked


def test_only_postgresql_urls_select_the_shared_store() -> None:
    assert is_postgres("postgresql://db/x") and is_postgres("postgres://db/x")
    assert not is_postgres("state.db") and not is_postgres("/var/lib/postgresql.db")

"""How the PostgreSQL state is named in messages: never with its password."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler import redact
from autoscaler.adapters.state.pg import Connector, PostgresSettings
from autoscaler.config.state import is_postgres, open_postgres_state
from autoscaler.errors import StateError


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        pytest.param(
            "postgresql://ops:s3cret-pw@db.internal:5433/scaling",
            "postgresql://db.internal:5433/scaling (user ops)",
            id="uri",
        ),
        pytest.param(
            "host=db.internal user=ops password=s3cret-pw dbname=scaling",
            "postgresql://db.internal/scaling (user ops)",
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


def test_every_postgresql_password_is_registered_before_anything_can_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password_file = tmp_path / "pg-password"
    password_file.write_text("from-the-file-7f3\n")
    monkeypatch.setenv("PGPASSWORD", "from-the-env-19c")
    dsn = "postgresql://ops:in-the-uri-a41@127.0.0.1:9/scaling"  # nothing listens there
    with pytest.raises(StateError) as raised:
        open_postgres_state(dsn, str(password_file))
    for secret in ("from-the-file-7f3", "from-the-env-19c", "in-the-uri-a41"):
        assert secret not in str(raised.value)
        assert redact.scrub(f"echoed: {secret}") == f"echoed: {redact.MASK}"

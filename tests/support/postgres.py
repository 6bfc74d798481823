"""A PostgreSQL for the tests: the server ``.ci/run`` starts (``TEST_POSTGRES``), one
fresh schema per test, so tests run side by side and leave nothing behind.

Without a server the PostgreSQL tests skip, naming the install command; with
``TEST_POSTGRES_REQUIRED=1`` (CI) they fail instead: CI never skips them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

SERVER = os.environ.get("TEST_POSTGRES")  # read at import: the autouse fixture clears env
REQUIRED = os.environ.get("TEST_POSTGRES_REQUIRED") == "1"
MISSING = (
    "no PostgreSQL for the tests: apt install postgresql, then `bash .ci/run` (it starts a "
    "throwaway server), or set TEST_POSTGRES=postgresql://USER@127.0.0.1:PORT/DB"
)


def fresh_schema() -> Iterator[str]:
    """A URL whose connections work in a schema of their own, dropped afterwards."""
    if not SERVER:
        if REQUIRED:
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from fresh_schema()

"""Store fixtures: a database URL per backend, fresh for every test."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import require
from tests.pg import (
    PostgresUnavailable,
    admin_url_for,
    create_database,
    running_postgres,
)

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One PostgreSQL server per session; yields its maintenance-database URL."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(running_postgres(tmp_path_factory.mktemp("postgres")))
        except PostgresUnavailable as e:
            require.missing(str(e))
        yield admin_url_for(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file path, or a new database on the session's server."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "enoexec.db")
    admin_url = request.getfixturevalue("postgres_server")
    return create_database(admin_url, f"test_{next(_database_numbers)}")


@pytest.fixture
def open_store(store_url: str) -> Iterator[Callable[..., Any]]:
    """``open_store(**kw)`` opens a Store on ``store_url``; every store is closed afterwards."""
    from collector.store.store import Store

    opened: list[Store] = []

    def _open(url: str | None = None, **kw: Any) -> Store:
        store = Store(url or store_url, **kw)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()

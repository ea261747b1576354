"""Shared test fixtures: repository paths, the optional ../shared data, torch threads, a
throwaway PostgreSQL server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

if TYPE_CHECKING:
    from dse.tools.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real measurement files); the test is skipped when it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is not present")
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the session (dse.tools.postgres: initdb in a temporary
    folder, 127.0.0.1 on a free port, stopped and deleted at the end); the test is skipped, with
    the reason, where it cannot start (no server binaries, no driver)."""
    import importlib.util

    from dse.tools.postgres import PostgresUnavailable, throwaway_postgres

    if importlib.util.find_spec("psycopg2") is None:
        pytest.skip("the PostgreSQL driver psycopg2 is not installed "
                    "(pip install -e '.[postgres]')")
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(throwaway_postgres())
        except PostgresUnavailable as exc:
            pytest.skip(f"no throwaway PostgreSQL server: {exc}")
        yield server


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Many small device ops: intra-op threads only add waits (modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

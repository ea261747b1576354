"""RDB storages of co-design studies (PostgreSQL, MySQL): credentials, heartbeat, clear errors.

A study spread over machines names a database server in ``search.{study}.storage``, e.g.
``postgresql://dse@db.example.org:5432/dse``. The password never appears in the config (the URL
is copied into the effective config, Snakemake's records and the report): a worker reads it from
``storage_password_file:`` (first line of the file), else the ``DSE_STORAGE_PASSWORD``
environment variable, else leaves it to the driver (libpq reads ``PGPASSWORD``, ``PGPASSFILE``
and ``~/.pgpass``). It is handed to the driver as a connection argument, so it is in no URL,
log line, error message or result file.

The storage records a heartbeat of every running trial (Optuna's heartbeat): a trial whose
worker died (SIGKILL, node failure) is failed ``grace_period`` seconds after its last heartbeat
by the next worker that looks, and its parameters are re-queued (Optuna's
``RetryHeartbeatStaleTrialCallback``, at most ``max_retry`` times).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from dse.errors import DseError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from dse.search.space import StudySpec

PASSWORD_ENV = "DSE_STORAGE_PASSWORD"
CONNECT_TIMEOUT_S = 10  # assumption: a reachable server answers a connection within seconds
_HOW = (f"set {PASSWORD_ENV}, storage_password_file: or a PGPASSFILE; "
        "check that the server runs and accepts connections from this host")


def storage_url(spec: StudySpec) -> URL:
    """The study's storage URL, parsed; a URL holding a password is refused."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    key = f"search.{spec.name}.storage"
    try:
        url = make_url(str(spec.storage))
    except ArgumentError:
        raise DseError(f"{key}: not a database URL (e.g. postgresql://dse@host:5432/dse)") \
            from None
    if url.password is not None:
        raise DseError(f"{key}: the URL holds a password, which would be copied into the "
                       f"effective config and the results; remove it and {_HOW.split(';')[0]}")
    return url


def public_url(spec: StudySpec) -> str:
    """The storage URL as it may be written to study.json and logs (it has no password)."""
    return storage_url(spec).render_as_string(hide_password=True)


def storage_password(spec: StudySpec) -> str | None:
    """storage_password_file's first line, else $DSE_STORAGE_PASSWORD, else None (the
    driver's own sources: PGPASSWORD, PGPASSFILE, ~/.pgpass)."""
    if spec.storage_password_file:
        path = Path(spec.storage_password_file).expanduser()
        key = f"search.{spec.name}.storage_password_file"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise DseError(f"{key}: cannot read {path} ({exc.strerror})") from None
        if not lines or not lines[0]:
            raise DseError(f"{key}: {path} is empty; write the password on its first line")
        return lines[0]
    return os.environ.get(PASSWORD_ENV) or None


def open_rdb(spec: StudySpec) -> optuna.storages.RDBStorage:
    """Connect to the study's database server, with heartbeats and retries of stale trials."""
    url = storage_url(spec)
    password = storage_password(spec)
    connect_args: dict[str, object] = {}
    if password is not None:
        connect_args["password"] = password
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    where = f"search.{spec.name}.storage {url.render_as_string(hide_password=True)}"
    try:
        with warnings.catch_warnings():  # the heartbeat is marked experimental in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url.render_as_string(hide_password=False),
                engine_kwargs={"connect_args": connect_args, "pool_pre_ping": True},
                heartbeat_interval=spec.heartbeat_interval, grace_period=spec.grace_period,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=spec.max_retry))
    except ImportError as exc:
        raise DseError(f"{where}: its database driver is not installed ({exc.name or exc}); "
                       "pip install 'dse[postgres]' (psycopg2-binary)") from None
    except Exception as exc:  # SQLAlchemy/driver errors: one line, never the password
        raise DseError(f"{where}: cannot open the storage: {_one_line(exc, password)}; "
                       f"{_HOW}") from None


def _one_line(exc: BaseException, secret: str | None) -> str:
    """The driver's own message (e.g. libpq's 'password authentication failed for user'),
    flattened to one line, with any occurrence of the password masked."""
    from sqlalchemy.exc import DBAPIError

    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = " ".join(str(orig).split()) or type(orig).__name__
    return text.replace(secret, "***") if secret else text


def has_heartbeat(storage: optuna.storages.BaseStorage) -> bool:
    """Whether the storage records heartbeats (so dead workers' trials fail by themselves)."""
    return isinstance(storage, optuna.storages.RDBStorage) and bool(
        storage.get_heartbeat_interval())


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the running trials whose heartbeat stopped and re-queue them (Optuna does this
    before each new trial; workers waiting for the last trials call it too)."""
    with warnings.catch_warnings():  # marked experimental in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)

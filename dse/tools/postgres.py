"""A throwaway PostgreSQL server for trying and testing RDB-backed co-design studies.

``initdb`` in a fresh temporary folder, a server listening on 127.0.0.1 on a free port with
password (SCRAM) authentication, one database, stopped and deleted at the end. It uses the
server binaries of Debian's ``postgresql`` package (found with ``pg_config --bindir``, then
``/usr/lib/postgresql/*/bin``, then ``PATH``). PostgreSQL refuses to run as root, so as root
the server runs as the ``postgres`` user (created by the package), else as ``nobody``.

    scripts/throwaway-postgres            # prints the URL and the password file, Ctrl-C stops

The password is written to a file readable by you only; it is never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 60  # assumption: initdb + start take a few seconds; 60 s covers a busy CI box


class PostgresUnavailable(RuntimeError):
    """The server cannot be started here (no binaries, no unprivileged user, start failed)."""


@dataclass(frozen=True)
class PostgresServer:
    """A running server: ``url`` carries no password; it is in ``password_file``."""

    url: str
    host: str
    port: int
    user: str
    database: str
    password_file: Path
    root: Path

    @property
    def password(self) -> str:
        return self.password_file.read_text(encoding="utf-8").splitlines()[0]


def find_bindir() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: pg_config's, Debian's newest, or PATH's."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                 timeout=10).stdout.strip()
            if out:
                candidates.append(Path(out))

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", path)) or (0,)

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                           key=version, reverse=True)]
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).resolve().parent)
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    return None


def _server_user() -> str | None:
    """The account the server runs as: ourselves, or (as root) postgres / nobody."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresUnavailable("running as root and neither a 'postgres' nor a 'nobody' user "
                              "exists to run the server (PostgreSQL refuses root)")


def _as(user: str | None, cmd: list[str]) -> list[str]:
    if user is None:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *cmd]
    return ["su", "-s", "/bin/sh", user, "-c", shlex.join(cmd)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], what: str, log: Path | None = None,
         env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=START_TIMEOUT_S, env=env)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        if log is not None and log.is_file():
            detail += log.read_text(errors="replace").strip().splitlines()[-3:]
        raise PostgresUnavailable(f"{what} failed: {' | '.join(detail[-4:]) or proc.returncode}")


@contextlib.contextmanager
def throwaway_postgres(user: str = "dse", database: str = "dse") -> Iterator[PostgresServer]:
    """Start a fresh server on 127.0.0.1 (a free port); stop and delete it on exit."""
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable("PostgreSQL server binaries not found (pg_config --bindir, "
                                  "/usr/lib/postgresql/*/bin, PATH); install Debian's "
                                  "'postgresql' package")
    runas = _server_user()
    root = Path(tempfile.mkdtemp(prefix="dse-postgres-"))
    data, log, sockets = root / "data", root / "server.log", root / "sockets"
    try:
        password = secrets.token_urlsafe(18)
        password_file = root / "password"
        password_file.write_text(password + "\n", encoding="utf-8")
        password_file.chmod(0o600)
        initdb_pw = root / "initdb.pw"
        initdb_pw.write_text(password + "\n", encoding="utf-8")
        initdb_pw.chmod(0o600)
        if runas is not None:
            info = pwd.getpwnam(runas)
            root.chmod(0o755)  # the server user enters; password stays 0600 (ours)
            os.chown(initdb_pw, info.pw_uid, info.pw_gid)
            for folder in (data, sockets):
                folder.mkdir(mode=0o700)
                os.chown(folder, info.pw_uid, info.pw_gid)
            log.touch()
            os.chown(log, info.pw_uid, info.pw_gid)
        else:
            sockets.mkdir(mode=0o700)
        _run(_as(runas, [str(bindir / "initdb"), "-D", str(data), "-U", user,
                         "--auth=scram-sha-256", f"--pwfile={initdb_pw}", "--no-locale",
                         "-E", "UTF8"]), "initdb")
        initdb_pw.unlink()
        port = _start(bindir, runas, data, log, sockets)
        env = {**os.environ, "PGPASSWORD": password}
        _run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user,
              database], "createdb", env=env)
        yield PostgresServer(url=f"postgresql://{user}@127.0.0.1:{port}/{database}",
                             host="127.0.0.1", port=port, user=user, database=database,
                             password_file=password_file, root=root)
    finally:
        if (data / "postmaster.pid").is_file():
            subprocess.run(_as(runas, [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                       "-w", "stop"]), capture_output=True,
                           timeout=START_TIMEOUT_S, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _start(bindir: Path, runas: str | None, data: Path, log: Path, sockets: Path) -> int:
    """pg_ctl start on a free port (three attempts: another process may take the port)."""
    error: PostgresUnavailable | None = None
    for _ in range(3):
        port = _free_port()
        opts = (f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off "
                "-c full_page_writes=off -c max_connections=50")
        try:
            _run(_as(runas, [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                             "-t", str(START_TIMEOUT_S), "-o", opts, "start"]),
                 "pg_ctl start", log=log)
            return port
        except PostgresUnavailable as exc:
            error = exc
    assert error is not None
    raise error


def main(argv: list[str] | None = None) -> int:
    """Run a throwaway server until Ctrl-C / SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="throwaway-postgres",
        description="Start a throwaway PostgreSQL server on 127.0.0.1 for dse studies.")
    parser.add_argument("--user", default="dse", help="database user [dse]")
    parser.add_argument("--database", default="dse", help="database name [dse]")
    args = parser.parse_args(argv)
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        with throwaway_postgres(args.user, args.database) as server:
            print(f"storage: {server.url}\n"
                  f"storage_password_file: {server.password_file}\n"
                  f"  (or: export DSE_STORAGE_PASSWORD=\"$(cat {server.password_file})\"; "
                  f"optuna-dashboard reads PGPASSWORD)\n"
                  "Ctrl-C stops the server and deletes it.", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while not stop["now"]:
                    signal.pause()
    except PostgresUnavailable as exc:
        print(f"throwaway-postgres: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

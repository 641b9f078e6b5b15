"""A throwaway PostgreSQL server for tests.

``running_postgres(tmpdir)`` runs ``initdb`` into a fresh directory, starts the
server on a free 127.0.0.1 port with its unix socket in that directory, creates a
database and yields a ``postgresql://`` URL to it; on exit it stops the server
(``pg_ctl stop -m fast``) and removes the directory. As root, PostgreSQL refuses
to run, so the server runs as the ``postgres`` user (Debian's package creates it)
through ``runuser``, in a directory under the system temp dir that it can reach.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

SUPERUSER = "enoexec"


class PostgresUnavailable(Exception):
    """The PostgreSQL server binaries (or a user to run them as) are missing."""


def find_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl: PATH first, then Debian's versioned dirs."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")],
        reverse=True,
    )
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PostgresUnavailable(
        "no initdb/pg_ctl found in PATH or /usr/lib/postgresql/*/bin: install PostgreSQL "
        "(apt-get install -y postgresql) to run the PostgreSQL store tests"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the server behind ``admin_url``; returns its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def _runner() -> tuple[list[str], int | None, int | None]:
    """Command prefix, uid and gid to run the server binaries with."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError as e:
        raise PostgresUnavailable("running as root and there is no 'postgres' user to run PostgreSQL as") from e
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresUnavailable("running as root and runuser is missing: cannot drop to the 'postgres' user")
    return [runuser, "-u", "postgres", "--"], user.pw_uid, user.pw_gid


@contextlib.contextmanager
def running_postgres(tmpdir: str | os.PathLike[str] | None = None) -> Iterator[str]:
    """Start a private PostgreSQL server; yield a URL to a fresh ``enoexec`` database."""
    bin_dir = find_bin_dir()
    prefix, uid, gid = _runner()
    # pytest's tmp dirs are 0700 and owned by root: the postgres user could not enter them.
    workdir = Path(tempfile.mkdtemp(prefix="enoexec-pg-", dir=None if uid is not None else tmpdir))
    data, log = workdir / "data", workdir / "server.log"
    if uid is not None and gid is not None:
        os.chown(workdir, uid, gid)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)

    started = False
    try:
        done = run(str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                   "--locale=C", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        port = 0
        for _attempt in range(3):  # a free port can be taken between probing and binding
            port = free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            done = run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                       "-o", options, "start")
            if done.returncode == 0:
                started = True
                break
        if not started:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else done.stderr
            raise RuntimeError(f"pg_ctl start failed: {tail.strip()}")
        admin_url = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        yield create_database(admin_url, "enoexec")
    finally:
        if started:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


def admin_url_for(url: str) -> str:
    """The maintenance-database URL on the same server as ``url``."""
    base, _, _ = url.rpartition("/")
    return f"{base}/postgres"

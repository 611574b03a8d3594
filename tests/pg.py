"""A private PostgreSQL server for the tests and benchmarks/feedback_pg.py: its own data
directory (a temporary one) and a free port on 127.0.0.1, password authentication only.

Debian's `postgresql` package (tools/install-system.sh) puts the server's programs in
/usr/lib/postgresql/VERSION/bin. initdb and pg_ctl refuse to run as root: as root they run as
the `postgres` user the package creates (runuser), in a directory that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

USER = "digitrec"  # the role the servers connect as; owns the databases it gets


def bindir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.parent.name)],
    )
    return versions[-1].parent if versions else None


def missing() -> str | None:
    """Why a private server cannot be started here, or None."""
    if bindir() is None:
        return "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'digitrec[postgres]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no `postgres` user to run PostgreSQL as"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    """One cluster: `start()`, `stop()` (fast: open transactions are cut), `database(name)`."""

    def __init__(self) -> None:
        why = missing()
        if why:
            raise RuntimeError(why)
        self.bin = bindir()
        assert self.bin is not None
        self.port = free_port()
        self.password = secrets.token_hex(12)  # the superuser's and USER's
        self.root = Path(tempfile.mkdtemp(prefix="digitrec-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.as_owner: list[str] = []
        if os.geteuid() == 0:  # initdb and pg_ctl refuse root
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.as_owner:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        self.running = False

    def _run(self, program: str, *args: str) -> None:
        assert self.bin is not None
        done = subprocess.run(
            [*self.as_owner, str(self.bin / program), *args],
            capture_output=True,
            text=True,
            cwd=self.root,
        )
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed:\n{done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=60 -c shared_buffers=32MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", options, "start")  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Fast shutdown: connections are cut, open transactions rolled back."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        self.running = False

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def database(self, name: str) -> str:
        """A new, empty database owned by USER (created with the role); its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as admin:
            if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (USER,)).fetchone():
                # Utility statements take no parameters: psycopg quotes the name and the literal.
                admin.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(USER), sql.Literal(self.password)
                    )
                )
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(USER)
                )
            )
        return self.url(name, USER)

    def close(self) -> None:
        if self.running:
            with contextlib.suppress(RuntimeError):
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    try:
        server.start()
        yield server
    finally:
        server.close()

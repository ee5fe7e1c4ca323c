"""A private PostgreSQL server for the tests: initdb + pg_ctl in a temp dir, on 127.0.0.1.

Debian's `postgresql` package provides the binaries (`.ci/run` installs it when missing).
initdb refuses to run as root, so as root the server runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin holding initdb (or initdb on PATH)."""
    dirs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if dirs:
        return Path(dirs[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    folder: Path
    port: int = 0

    def _as_owner(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if os.getuid() == 0 else args

    def _run(self, *args: str) -> None:
        subprocess.run(
            self._as_owner([str(self.bin_dir / args[0]), *args[1:]]),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        data = self.folder / "data"
        data.mkdir(parents=True)
        if os.getuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(data, "postgres")
        self._run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.port = free_port()
        self.resume()

    def resume(self) -> None:
        """Start the server (again, after `pause`) on its port."""
        data = self.folder / "data"
        options = (
            f"-p {self.port} -k {data} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(data / "log"), "-w", "start")

    def pause(self) -> None:
        """Stop the server as an administrator would for a restart (its data stays)."""
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop")

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

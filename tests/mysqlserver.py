"""A private MariaDB server for the tests: mariadb-install-db + mariadbd in a temp dir, on
127.0.0.1. The same methods as tests/pgserver.py's, so a test can take either.

Debian's `mariadb-server` package provides the binaries (`.ci/run` installs it when missing).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.pgserver import free_port

START_TIMEOUT_S = 60


def find_binaries() -> tuple[Path, Path] | None:
    """(the server, the data-folder initializer), or None when MariaDB is not installed."""
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
    install = shutil.which("mariadb-install-db")
    return (Path(server), Path(install)) if server and install else None


@dataclass
class MariaDBServer:
    server: Path
    install: Path
    folder: Path
    options: tuple[str, ...] = ()  # more server options (a small fixed tablespace, say)
    port: int = 0
    process: subprocess.Popen | None = None

    def start(self) -> None:
        subprocess.run(
            [
                str(self.install), "--no-defaults", f"--datadir={self.folder / 'data'}",
                *self._as_root(), "--auth-root-authentication-method=normal", "--skip-test-db",
                *self.options,
            ],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self.port = free_port()
        self.resume()

    def _as_root(self) -> list[str]:
        return ["--user=root"] if os.getuid() == 0 else []

    def resume(self) -> None:
        """Start the server (again, after `pause`) on its port; returns once it answers."""
        log = open(self.folder / "server.log", "a")  # noqa: SIM115 (the server writes it)
        self.process = subprocess.Popen(
            [
                str(self.server), "--no-defaults", f"--datadir={self.folder / 'data'}",
                *self._as_root(), f"--port={self.port}", "--bind-address=127.0.0.1",
                f"--socket={self.folder / 'socket'}", "--skip-name-resolve", "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0", "--max-connections=300", *self.options,
            ],
            stdout=log, stderr=log,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                text = (self.folder / "server.log").read_text()[-2000:]
                raise RuntimeError(f"mariadbd did not start: {text}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        import pymysql

        try:
            pymysql.connect(host="127.0.0.1", port=self.port, user="root").close()
        except pymysql.err.OperationalError:
            return False
        return True

    def pause(self) -> None:
        """Stop the server as an administrator would for a restart (its data stays)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)  # mariadbd's clean shutdown
            self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL (mysql://, which dse gives PyMySQL)."""
        import pymysql

        with pymysql.connect(host="127.0.0.1", port=self.port, user="root") as connection:
            connection.cursor().execute(f"CREATE DATABASE `{name}`")
        return self.url(name)

    def url(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

"""A server subprocess for the fixtures: start it, wait until it is ready (or dead), stop it.

`ServerProcess` is what `PrometheusServer` and `AlertmanagerServer` share: one process on
127.0.0.1:`port`, run from `workdir` with its output appended to `log_path`, ready once
`GET /-/ready` answers 200. A subclass sets `name` (for messages), gives its `command()`
and writes what the process reads at startup in `prepare()`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Self

from tests.support.net import LOCAL_HTTP, free_port, wait_until


class ServerProcess:
    """One server process and its log, all under `workdir`; a context manager.

    `start()` fails with the log's tail when the process dies or is not ready within
    `startup_timeout` seconds; `stop()` terminates it, then kills it if it lingers.
    """

    name = "server"

    def __init__(
        self,
        workdir: Path,
        *,
        log_name: str,
        port: int | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / log_name
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The full command line `start()` runs."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Write the files the process reads at startup (config); `workdir` exists."""

    def start(self) -> None:
        """`prepare()`, start the process and wait for `/-/ready`, or fail with its log."""
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        proc = self._proc
        try:
            wait_until(
                lambda: proc.poll() is not None or self._ready(),
                timeout=self.startup_timeout,
                what=f"{self.name} on {self.url} to be ready",
            )
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"{self.name} did not become ready within {self.startup_timeout}s on {self.url}; "
                f"log tail:\n{self.log_tail()}"
            ) from None
        if proc.poll() is not None:
            self._proc = None
            raise RuntimeError(
                f"{self.name} exited with status {proc.returncode} at startup "
                f"(command: {' '.join(self.command())}); log tail:\n{self.log_tail()}"
            )

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process; kill it if it is still alive after `timeout` seconds."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def log_tail(self, lines: int = 30) -> str:
        """The last `lines` lines of the process's log (for failure messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _ready(self) -> bool:
        try:
            with LOCAL_HTTP.open(self.url + "/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

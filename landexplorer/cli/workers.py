"""Several uvicorn worker processes, each accepting on its own listening socket.

With one listening socket shared by every worker (uvicorn's ``--workers``), whichever
worker's event loop is free accepts the next connection. A worker drawing tiles hands the
drawing to its thread pool, so its event loop stays free and it keeps winning: a map that
opens 8 connections at once was seen with all 8 on one worker, the other idle, and the
server no faster at 8 connections than at 1.

Here each worker has its own socket on the same address (``SO_REUSEPORT``), and Linux
spreads new connections over the sockets by their addresses, so the connections of one
browser land on several workers. The sockets are made and kept by this supervising
process: a worker that dies is started again on the same socket, and connections that
arrived meanwhile wait in its queue instead of being refused.

Before the group is made, the address is taken once without ``SO_REUSEPORT``: a port
another program (or another ``landexplorer serve``) already listens on is refused with a
clear error, never quietly shared.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable

from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Process

from landexplorer.api.supervised import SUPERVISOR_ENV
from landexplorer.errors import InputError

log = logging.getLogger("uvicorn.error")

#: Pending connections each worker's socket holds (the kernel's usual cap).
BACKLOG = 2048
#: How often the supervisor looks at its workers (seconds).
CHECK_S = 0.5


def spreads_connections() -> bool:
    """Whether this system spreads connections over sockets that share a port (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _check_free(host: str, port: int) -> None:
    probe = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        raise InputError(
            f"Cannot listen on {host} port {port}: {exc.strerror or exc}. Another program "
            "(perhaps another landexplorer serve) may be using it; stop it or choose "
            "another port with --port."
        ) from None
    finally:
        probe.close()


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one address, in one ``SO_REUSEPORT`` group (port 0:
    the port the system picks for the first)."""
    if port:
        _check_free(host, port)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(_family(host), socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(BACKLOG)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise InputError(f"Cannot listen on {host} port {port}: {exc.strerror or exc}.") from None
    return sockets


class Workers:
    """Start one uvicorn worker per socket, start again any that dies, stop all on a
    signal (Ctrl-C, ``SIGTERM``, ``SIGHUP``)."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        self.config = config
        self.sockets = sockets
        self.processes: list[Process] = []
        self.stopping = threading.Event()
        self.failed = False

    def _start(self, slot: int) -> Process:
        process = Process(self.config, [self.sockets[slot]])
        process.start()
        return process

    def _on_signal(self, *_: object) -> None:
        self.stopping.set()

    def run(self, on_started: Callable[[], None] | None = None) -> None:
        # the workers end with this process, however it ends (api/asgi.py reads this)
        os.environ[SUPERVISOR_ENV] = str(os.getpid())
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            self.processes = [self._start(slot) for slot in range(len(self.sockets))]
            if on_started is not None:
                on_started()
            while not self.stopping.wait(CHECK_S):
                self._keep_alive()
        finally:
            for process in self.processes:
                process.terminate()
            for process in self.processes:
                process.join()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for sock in self.sockets:
                sock.close()
        if self.failed:
            raise SystemExit(STARTUP_FAILURE)

    def _keep_alive(self) -> None:
        for slot, process in enumerate(self.processes):
            if self.stopping.is_set():
                return
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # gone, or hung past the health check
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                # the app cannot start (a broken catalogue or setting): it would fail the
                # same way every time, so stop instead of starting it again and again
                log.error("Worker %s could not start; stopping.", process.pid)
                self.failed = True
                self.stopping.set()
                return
            log.warning("Worker %s stopped (exit %s); starting another.", process.pid,
                        process.exitcode)  # fmt: skip
            self.processes[slot] = self._start(slot)

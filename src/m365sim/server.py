"""Serving the simulator over HTTP(S) on a real port, inside the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from m365sim.app import create_app
from m365sim.tls import ensure_certificates

if TYPE_CHECKING:
    from fastapi import FastAPI

    from m365sim.simulator import Simulator

STARTUP_TIMEOUT_S = 10.0
log = logging.getLogger("m365sim.server")


@dataclass(frozen=True)
class RunningServer:
    """A server that is accepting connections: its base URL, CA file (TLS) and port."""

    url: str
    ca_file: Path | None
    port: int


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner (a test, or the CLI)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install no signal handlers."""
        yield


def _client_host(host: str) -> str:
    """How a client on this machine writes the listening host in a URL."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - all interfaces: reach them via loopback
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for host:port, with Nagle off on the connections it accepts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # asyncio sets TCP_NODELAY on accepted sockets only when their proto is IPPROTO_TCP
    # (base_events._set_nodelay); with proto 0 Nagle held each JSON body back until
    # the client's delayed ACK, about 40 ms per answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host} port {port}: {exc.strerror}") from exc
    return sock


async def _wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_S
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("the simulator's server stopped while starting")
        if loop.time() > deadline:
            raise TimeoutError("the simulator's server did not start in time")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def run_server(
    sim: Simulator,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool = True,
    cert_dir: Path | None = None,
    app: FastAPI | None = None,
) -> AsyncIterator[RunningServer]:
    """Serve `sim` on host:port (0 = any free port) until the block ends.

    With TLS (the default) the certificates go to `cert_dir`, or to a temporary
    directory removed at the end. Also tells `sim` its base URL and runs `sim.run()`.
    """
    temporary: tempfile.TemporaryDirectory[str] | None = None
    ssl_files: dict[str, str] = {}
    ca_file: Path | None = None
    if tls:
        if cert_dir is None:
            temporary = tempfile.TemporaryDirectory(prefix="m365sim-tls-")
            cert_dir = Path(temporary.name)
        files = ensure_certificates(cert_dir, [host])
        ssl_files = {"ssl_certfile": str(files.cert_file), "ssl_keyfile": str(files.key_file)}
        ca_file = files.ca_file
    sock = listening_socket(host, port)
    bound_port = int(sock.getsockname()[1])
    url = f"{'https' if tls else 'http'}://{_client_host(host)}:{bound_port}"
    sim.set_base_url(url)
    config = uvicorn.Config(
        app or create_app(sim), host=host, port=bound_port, date_header=False,
        server_header=False, log_level="warning", access_log=False, lifespan="off",
        # uvicorn closes idle connections after 5 s, exactly MSAL's device-code polling
        # interval: a poll could meet the close (RemoteDisconnected). Microsoft's front
        # ends keep idle connections for minutes.
        timeout_keep_alive=120,
        timeout_graceful_shutdown=2, **ssl_files)  # type: ignore[arg-type]
    server = _EmbeddedServer(config)
    serve_task = asyncio.create_task(server.serve(sockets=[sock]), name="m365sim-server")
    sim_task = asyncio.create_task(sim.run(), name="m365sim-run")
    try:
        await _wait_started(server, serve_task)
        yield RunningServer(url, ca_file, bound_port)
    finally:
        server.should_exit = True
        # Idle keep-alive TLS connections (a client's pool) would hold uvicorn's graceful
        # shutdown for its whole timeout: give requests in flight a moment, then go.
        done, _ = await asyncio.wait({serve_task}, timeout=0.5)
        if not done:
            server.force_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serve_task, timeout=10)
        sim_task.cancel()
        try:
            await sim_task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("the simulator's background work failed")
        sock.close()
        if temporary is not None:
            temporary.cleanup()


async def serve_until_stopped(
    sim: Simulator,
    *,
    host: str,
    port: int,
    tls: bool,
    cert_dir: Path | None,
    on_ready: Callable[[str, Path | None], None],
) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly (the `m365sim serve` loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    try:
        async with run_server(sim, host=host, port=port, tls=tls, cert_dir=cert_dir) as running:
            on_ready(running.url, running.ca_file)
            await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)

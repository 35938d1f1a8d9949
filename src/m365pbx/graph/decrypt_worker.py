"""Decrypting rich notifications in worker processes (no GIL shared with the event loop).

The event loop's thread holds the GIL while it parses webhook bodies; a decryption thread
then waits up to the switch interval (5 ms) each time it needs the GIL back around the RSA
step, which capped a thread at about 200 decryptions a second under load. So did
ProcessPoolExecutor, whose feeder and result threads wait for the GIL the same way. Here
each worker is a child process (`python -m m365pbx.graph.decrypt_worker`) spoken to over
its stdin and stdout by the event loop itself: length-prefixed pickles, requests
pipelined, keys sent once per certificate and worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import signal
import struct
import sys
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from m365pbx.graph.notifications import EncryptedContent, MalformedNotification, decrypt_content

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
Result = dict[str, Any] | None


class WorkerFailed(RuntimeError):
    """A decryption worker process is gone or answered nonsense."""


def decrypt_chunk(keys: dict[str, rsa.RSAPrivateKey], contents: list[EncryptedContent]
                  ) -> list[Result]:
    """Decrypt each content with the key of its certificate; None where it fails."""
    done: list[Result] = []
    for content in contents:
        try:
            done.append(decrypt_content(content, keys[content.certificate_id]))
        except (MalformedNotification, KeyError):
            done.append(None)
    return done


def _serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The worker: answer requests from stdin on stdout until stdin ends."""
    keys: dict[str, rsa.RSAPrivateKey] = {}
    while header := stdin.read(_HEADER.size):
        request = stdin.read(_HEADER.unpack(header)[0])
        number, new_keys, contents = pickle.loads(request)  # noqa: S301  (from our parent)
        for certificate_id, der in new_keys.items():
            key = load_der_private_key(der, password=None)
            if isinstance(key, rsa.RSAPrivateKey):
                keys[certificate_id] = key
        answer = pickle.dumps((number, decrypt_chunk(keys, contents)))
        stdout.write(_HEADER.pack(len(answer)) + answer)
        stdout.flush()


class DecryptWorker:
    """One worker process and the requests waiting for its answers."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.waiting: dict[int, asyncio.Future[list[Result]]] = {}
        self.in_hand = 0  # notifications sent and not answered yet
        self._sizes: dict[int, int] = {}
        self._numbers = itertools.count()
        self._sent_keys: dict[str, bytes] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls) -> DecryptWorker:
        """Start a worker process."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "m365pbx.graph.decrypt_worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return cls(process)

    @property
    def alive(self) -> bool:
        """Whether the process still answers."""
        return self.process.returncode is None and not self._reader.done()

    def submit(self, keys: dict[str, bytes], contents: list[EncryptedContent]
               ) -> asyncio.Future[list[Result]]:
        """Send one chunk; the future gets its results in order."""
        if not self.alive or self.process.stdin is None:
            raise WorkerFailed("the decryption worker has ended")
        new = {cid: der for cid, der in keys.items() if self._sent_keys.get(cid) != der}
        self._sent_keys.update(new)
        number = next(self._numbers)
        request = pickle.dumps((number, new, contents))
        self.process.stdin.write(_HEADER.pack(len(request)) + request)
        future: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        self.waiting[number] = future
        self._sizes[number] = len(contents)
        self.in_hand += len(contents)
        return future

    async def _read(self) -> None:
        assert self.process.stdout is not None
        reason = "the decryption worker ended"
        try:
            while True:
                header = await self.process.stdout.readexactly(_HEADER.size)
                body = await self.process.stdout.readexactly(_HEADER.unpack(header)[0])
                number, results = pickle.loads(body)  # noqa: S301  (our own child process)
                future = self.waiting.pop(number, None)
                self.in_hand -= self._sizes.pop(number, 0)
                if future is not None and not future.done():
                    future.set_result(results)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            reason = f"the decryption worker ended ({exc.__class__.__name__})"
        finally:
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(WorkerFailed(reason))
                    # Whoever awaits it gets the error; nobody may (a stop): no log then.
                    future.exception()
            self.waiting.clear()

    async def stop(self) -> None:
        """End the process (closing its stdin ends its loop)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(self.process.wait(), 2)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group; the service ends the worker by closing its
    # input, so the worker ignores SIGINT instead of printing a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _serve(sys.stdin.buffer, sys.stdout.buffer)

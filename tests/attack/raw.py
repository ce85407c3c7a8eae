"""HTTP by hand over a socket, for attacks an HTTP client library will not send: bodies
streamed from a generator until the server answers, lying Content-Lengths, huge headers."""

from __future__ import annotations

import errno
import json
import select
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int | None  # None: the server closed the connection without an answer
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    sent: int = 0  # body (or request) bytes sent before we stopped
    seconds: float = 0.0  # from the first byte sent to the answer (or the close)

    def json(self) -> object:
        return json.loads(self.body)


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _read_response(sock: socket.socket, deadline: float) -> tuple[int | None, dict, bytes]:
    """One HTTP/1.1 response: status, headers, body (by Content-Length, chunks or close)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except (TimeoutError, ConnectionError, OSError):
            data = b""
        if not data:
            if not buf:
                return None, {}, b""
            break
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, {}, buf
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        want = int(headers["content-length"])
        while len(rest) < want and time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except (TimeoutError, ConnectionError, OSError):
                break
            if not data:
                break
            rest += data
        return status, headers, rest[:want]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while time.monotonic() < deadline:
            size_line, sep, after = rest.partition(b"\r\n")
            if sep:
                size = int(size_line.split(b";")[0] or b"0", 16)
                if size == 0:
                    break
                if len(after) >= size + 2:
                    body += after[:size]
                    rest = after[size + 2 :]
                    continue
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except (TimeoutError, ConnectionError, OSError):
                break
            if not data:
                break
            rest += data
        return status, headers, body
    return status, headers, rest


def stream(
    url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Iterable[bytes],
    *,
    chunked: bool = True,
    stop_after: int = 64 << 20,
    timeout: float = 30.0,
) -> RawResponse:
    """Send a request whose body comes from ``body`` (chunked unless told otherwise), and stop
    sending as soon as the server answers, closes, or ``stop_after`` bytes have gone."""
    host, port = _address(url)
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if chunked:
        head += "Transfer-Encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sent = 0
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        try:
            for piece in body:
                data = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
                view = memoryview(data)
                while view:
                    readable, writable, _ = select.select([sock], [sock], [], timeout)
                    if readable:  # an answer (or a close) before the body was all sent
                        raise StopIteration
                    if not writable:
                        raise TimeoutError("the server stopped reading and did not answer")
                    n = sock.send(view)
                    view = view[n:]
                    sent += n
                if sent >= stop_after:
                    break
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except (StopIteration, ConnectionError, BrokenPipeError):
            pass
        status, rheaders, rbody = _read_response(sock, time.monotonic() + timeout)
    return RawResponse(status, rheaders, rbody, sent, time.monotonic() - start)


def send(
    url: str, request: bytes, *, timeout: float = 15.0, half_close: bool = False
) -> RawResponse:
    """Send ``request`` as it is (it may be refused part way) and read one answer."""
    host, port = _address(url)
    sent = 0
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        view = memoryview(request)
        try:
            while view:
                readable, writable, _ = select.select([sock], [sock], [], timeout)
                if readable:
                    break
                if not writable:
                    break
                n = sock.send(view[: 1 << 16])
                view = view[n:]
                sent += n
            if half_close:
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError as exc:  # the server closed the connection first: an answer too
                    if exc.errno != errno.ENOTCONN:
                        raise
        except (ConnectionError, BrokenPipeError):
            pass
        status, rheaders, rbody = _read_response(sock, time.monotonic() + timeout)
    return RawResponse(status, rheaders, rbody, sent, time.monotonic() - start)


def repeat(piece: bytes, total: int) -> Iterator[bytes]:
    """``piece`` again and again up to ``total`` bytes: a body that is never held whole."""
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)

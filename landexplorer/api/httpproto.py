"""uvicorn's httptools protocol with a limit on the request line plus headers.

uvicorn's h11 protocol caps an incomplete request head (``h11_max_incomplete_event_size``);
its faster httptools protocol does not, so a client could send a 150 MB header and have the
server buffer and parse all of it. This protocol counts the bytes of each request head as
they arrive and answers 431 (and closes) when they pass the same setting, which
``landexplorer serve`` sets from ``Settings.max_header_kb``.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_BODY = (
    b'{"code":"too-large","description":"The request\'s address or headers are too long '
    b'for this server."}'
)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that refuses over-long request heads with 431."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_limit = int(self.config.h11_max_incomplete_event_size or 16 * 1024)
        self._head_bytes = 0
        self._in_head = True

    def data_received(self, data: bytes) -> None:
        # Feed a request head no more than the limit at a time, so a chunk holding a small
        # head and the start of its body is not mistaken for a long head.
        while data and self._in_head:
            room = self._head_limit - self._head_bytes
            if room <= 0:
                self._refuse_head()
                return
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)
            if self.transport.is_closing():
                return
        if data:
            super().data_received(data)

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # the next bytes on a kept-alive connection are a new request head
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """A request that is not valid HTTP (a lying Content-Length, broken chunks): the
        one error body, in words, instead of uvicorn's plain text."""
        body = (
            b'{"code":"bad-request","description":"The request is not valid HTTP: check '
            b'its Content-Length and Transfer-Encoding headers and the body sent after them."}'
        )
        if self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.transport.close()

    def _refuse_head(self) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + _BODY
        )
        self.transport.close()

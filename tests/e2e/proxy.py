"""A fault-injecting HTTP proxy on loopback, between a branch agent and HQ.

One request per connection (``Connection: close`` both ways), so every request
draws its own fault from a seeded schedule:

* ``drop``: reset the connection before reading or forwarding anything;
* ``delay``: wait, then forward as usual;
* ``error``: answer ``500`` without forwarding;
* ``cut``: forward, let HQ answer (and commit), then send only part of the answer;
* ``pass``: forward untouched.

Threads and blocking sockets with timeouts; ``close`` ends every thread and socket.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass

FAULTS = ("drop", "delay", "error", "cut", "pass")
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
ERROR_BODY = b'{"code": "injected", "message": "the proxy answered 500"}'
ERROR_RESPONSE = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(ERROR_BODY)).encode() + b"\r\nConnection: close\r\n\r\n"
) + ERROR_BODY


class ProxyError(ValueError):
    """The client sent something this proxy does not forward."""


@dataclass(frozen=True)
class Plan:
    """What to do with one connection."""

    fault: str
    delay: float
    cut_at: float  # fraction of HQ's answer that still reaches the client


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = conn.recv(min(left, 256 * 1024))
        if not chunk:
            raise ProxyError("the client closed the connection mid-body")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_request(conn: socket.socket) -> bytes | None:
    """Read one HTTP request; return it rewritten to close its connection (None if no request)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(16 * 1024)
        if not chunk:
            if head:
                raise ProxyError("the client closed the connection mid-head")
            return None
        head += chunk
        if len(head) > MAX_HEAD:
            raise ProxyError("request head too large")
    head, _, body = head.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    kept = [lines[0]]
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key == b"transfer-encoding":
            raise ProxyError("chunked requests are not supported")
        if key == b"content-length":
            length = int(value.strip())
        if key not in (b"connection", b"keep-alive"):
            kept.append(line)
    if length > MAX_BODY:
        raise ProxyError("request body too large")
    if len(body) < length:
        body += _recv_exactly(conn, length - len(body))
    kept.append(b"Connection: close")
    return b"\r\n".join(kept) + b"\r\n\r\n" + body[:length]


def _reset_on_close(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class FaultProxy:
    """Forward loopback HTTP to ``upstream_port``, injecting faults by a seeded schedule."""

    def __init__(
        self,
        upstream_port: int,
        weights: dict[str, float],
        *,
        seed: int = 0,
        max_delay: float = 0.4,
        timeout: float = 15.0,
        max_connections: int = 8,
    ):
        unknown = set(weights) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        self.upstream = ("127.0.0.1", upstream_port)
        self.kinds = list(weights)
        self.weights = [weights[k] for k in self.kinds]
        self.rng = random.Random(seed)
        self.max_delay = max_delay
        self.timeout = timeout
        self.injected: Counter[str] = Counter()
        self.committed_then_cut = 0  # HQ answered 200 but the client heard only part of it
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stop = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy-accept")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._acceptor.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, cut every open connection and join every thread."""
        self._stop.set()
        if self._acceptor.is_alive():
            self._acceptor.join(5)
        self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(self.timeout)

    def _plan(self) -> Plan:
        with self._lock:
            fault = self.rng.choices(self.kinds, self.weights)[0]
            return Plan(fault, self.rng.uniform(0.02, self.max_delay), self.rng.random())

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(timeout=self.timeout):
                conn.close()
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), name="proxy-conn")
            with self._lock:
                self._threads.add(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                self._track(conn)
                conn.settimeout(self.timeout)
                self._handle(conn, self._plan())
        except (OSError, ProxyError) as exc:
            with self._lock:
                self.errors.append(f"{exc.__class__.__name__}: {exc}")
        finally:
            self._untrack(conn)
            with self._lock:
                self._threads.discard(threading.current_thread())
            self._slots.release()

    def _handle(self, conn: socket.socket, plan: Plan) -> None:
        if plan.fault == "drop":
            _reset_on_close(conn)
            self._count("drop")
            return
        request = read_request(conn)
        if request is None:
            return
        if plan.fault == "error":
            conn.sendall(ERROR_RESPONSE)
            self._count("error")
            return
        if plan.fault == "delay" and self._stop.wait(plan.delay):
            return
        response = self._forward(request)
        if plan.fault == "cut":
            conn.sendall(response[: int(len(response) * plan.cut_at)])
            _reset_on_close(conn)
            self._count("cut")
            if response.startswith(b"HTTP/1.1 200"):
                with self._lock:
                    self.committed_then_cut += 1
            return
        conn.sendall(response)
        self._count(plan.fault)

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection(self.upstream, timeout=self.timeout) as upstream:
            self._track(upstream)
            try:
                upstream.sendall(request)
                chunks, size = [], 0
                while chunk := upstream.recv(256 * 1024):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise ProxyError("response too large")
                return b"".join(chunks)
            finally:
                self._untrack(upstream)

    def _count(self, fault: str) -> None:
        with self._lock:
            self.injected[fault] += 1

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

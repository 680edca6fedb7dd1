"""A loopback TCP proxy in front of a server (PostgreSQL, for the drills and tests) that can be cut and restored.

Point the app at the proxy's port instead of the server's. `cut()` makes the server look gone at once:
new connections are refused (the listening socket is closed, so a connect fails as it does when nothing
listens) and every open connection is dropped mid-conversation. `blackhole()` makes it go silent instead,
as a network partition or a frozen server does: nothing is refused and nothing is answered, so only the
client's own timeouts end its waits. `restore()` listens and forwards again on the same port (dropping
what went silent), so whatever was pointed at it finds the server again by itself.
"""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

_CHUNK = 65536


class FlakyProxy:
    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = port  # 0: a free port, chosen when it starts
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._silent = threading.Event()
        self.connections_made = 0
        self.connections_dropped = 0

    # ---- what a drill or a test does ---------------------------------------------------------

    def start(self) -> "FlakyProxy":
        self._listen()
        return self

    def stop(self) -> None:
        self.cut()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> "FlakyProxy":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def cut(self) -> int:
        """Refuse new connections and drop every open one; how many were dropped."""
        with self._lock:
            listener, self._listener = self._listener, None
            dropped = list(self._open)
            self._open.clear()
        if listener is not None:
            _close(listener)  # shutdown wakes the thread waiting in accept()
        for sock in dropped:
            _close(sock)
        pairs = len(dropped) // 2
        self.connections_dropped += pairs
        return pairs

    def blackhole(self) -> None:
        """Lose every byte from now on, both ways, and hold new connections unanswered."""
        self._silent.set()

    def restore(self) -> None:
        """Take connections and forward again, on the same port."""
        if self._silent.is_set():
            self._silent.clear()
            with self._lock:
                held = list(self._open)
                self._open.clear()
            for sock in held:  # what was lost broke them: they end as a timed-out connection would
                _close(sock)
        if self.is_cut:
            self._listen()

    @contextmanager
    def cut_off(self) -> Iterator[None]:
        """The server gone for the length of a `with` block."""
        self.cut()
        try:
            yield
        finally:
            self.restore()

    def url_for(self, database_url: str) -> str:
        """`database_url` with its host and port replaced by the proxy's, as a string with no password hidden."""
        return make_url(database_url).set(host=self.host, port=self.port).render_as_string(hide_password=False)

    @property
    def open_connections(self) -> int:
        """Connections being forwarded (pairs of sockets; a connection held in silence counts as half of one)."""
        with self._lock:
            return len(self._open) // 2

    # ---- the proxy itself ----------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        self._spawn(self._accept, listener)

    def _spawn(self, target, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="flaky-proxy")
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut: the listener was closed
            if self._silent.is_set():
                with self._lock:
                    self._open.add(client)  # held, never answered
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._listener is not listener:  # cut while this one was being connected
                    _close(client)
                    _close(upstream)
                    return
                self._open.update((client, upstream))
                self.connections_made += 1
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(_CHUNK):
                if not self._silent.is_set():
                    sink.sendall(chunk)
        except OSError:
            pass
        with self._lock:
            self._open.discard(source)
            self._open.discard(sink)
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()

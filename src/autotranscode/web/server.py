"""Serving the app: where it binds, which token it needs, and a uvicorn server on a
thread of its own (``web`` waits for Ctrl+C beside it; ``run --web`` beside the pipeline).

The socket is bound here, before the server starts, so a port in use or an address not
of this machine is one line from the command, not a log record from inside uvicorn.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass

from ..errors import ConfigError
from .security import is_loopback, new_token

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_BIND = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
#: A live stream still open at stop is cut after this.
GRACEFUL_STOP_SECONDS = 2
#: The server must be listening within this, or something is wrong with it.
START_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Bind:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port if port is None else port}/"


def parse_bind(text: str) -> Bind:
    """``HOST:PORT``, ``HOST``, ``:PORT`` or ``[IPv6]:PORT``; the rest from the default."""
    text = text.strip()
    host, port = DEFAULT_HOST, str(DEFAULT_PORT)
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigError(f"--web {text!r}: an IPv6 address goes in brackets, [::1]:8765")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"--web {text!r}: expected [HOST]:PORT")
            port = rest[1:]
    elif text.count(":") == 1:
        given_host, port = text.split(":")
        host = given_host or DEFAULT_HOST
    elif text:
        host = text
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--web {text!r}: the port must be a number from 0 to 65535")
    return Bind(host, int(port))


def token_for(bind: Bind, given: str | None) -> tuple[str | None, bool]:
    """The token the dashboard requires, and whether it was made up here (to be printed):
    beyond loopback there is always one."""
    if given:
        return given, False
    if bind.loopback:
        return None, False
    return new_token(), True


class WebServer:
    """A uvicorn server for ``app`` on a daemon thread; ``start`` returns once it listens,
    ``stop`` ends live streams and waits for the thread."""

    def __init__(self, app: object, bind: Bind) -> None:
        import uvicorn

        self.app = app
        self.bind = bind
        self.config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
            timeout_graceful_shutdown=GRACEFUL_STOP_SECONDS,
        )
        self.server = uvicorn.Server(self.config)
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the one chosen by the system, for port 0)."""
        assert self._socket is not None
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return self.bind.url(self.port)

    def start(self) -> WebServer:
        self._socket = _listen(self.bind)
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self._socket]},
            name="autotranscode-web",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the dashboard could not start on {self.bind.url()}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        state = getattr(self.app, "state", None)
        dashboard = getattr(state, "dashboard", None)
        if dashboard is not None:
            dashboard.stopping.set()
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(GRACEFUL_STOP_SECONDS + 5)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listen(bind: Bind) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(bind.host, bind.port, family, socket.SOCK_STREAM)
        sock = socket.socket(infos[0][0], socket.SOCK_STREAM)
    except (OSError, IndexError) as exc:
        raise ConfigError(f"--web {bind.host}: not an address of this machine ({exc})") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(infos[0][4])
        sock.listen(128)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"the dashboard cannot listen on {bind.url()}: {exc.strerror or exc}"
            " (choose another with --web HOST:PORT)"
        ) from exc
    return sock

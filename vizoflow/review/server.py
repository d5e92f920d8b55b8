"""Serving the review page: ``mode=serve`` in the foreground, or beside a live run (``serve.port`` set).

Footage of customers is personal data: the page binds to loopback unless a password is
set in ``VIZO_UI_PASSWORD``, and then every request needs it. The password is read from
the environment here only; it never enters the config, ``run.json`` or a log.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from vizoflow.errors import ConfigError, VizoflowError

log = logging.getLogger(__name__)

PASSWORD_ENV = "VIZO_UI_PASSWORD"
DEFAULT_PORT = 8765  # mode=serve when serve.port is null


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def page_password(host: str) -> str | None:
    """The page's password from the environment; refuses a non-loopback ``host`` without one.

    Raises:
        ConfigError: ``host`` is not loopback and no password is set.
    """
    password = os.environ.get(PASSWORD_ENV) or None
    if password is None and not is_loopback(host):
        raise ConfigError(f"serve.host={host} is not loopback: set {PASSWORD_ENV} to protect the page "
                          "(it shows footage of customers), or keep serve.host=127.0.0.1")
    return password


def check_port(port: Any) -> int:
    """``port`` if it is a port number (0: any free one).

    Raises:
        ConfigError: it is not a whole number 0-65535.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"serve.port must be a port number 0-65535, got {port!r}")
    return port


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``.

    Raises:
        ConfigError: the port is not 0-65535, or the address cannot be bound (in use, not this machine's); names it.
    """
    check_port(port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except (OSError, UnicodeError) as exc:  # in use, not this machine's address, or a host name that does not resolve
        sock.close()
        raise ConfigError(f"serve: cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    return sock


class ReviewServer:
    """The review page on one socket, served by uvicorn in a thread of its own (a context manager).

    Args:
        app: The ASGI app (:func:`vizoflow.review.app.create_app`).
        host: Address to bind.
        port: Port to bind (0: any free port; :attr:`url` tells which).
    """

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        self.host = host
        self.sock = listen(host, port)
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="review-page", daemon=True)

    @property
    def alive(self) -> bool:
        """Whether the server thread still runs."""
        return self._thread.is_alive()

    @property
    def url(self) -> str:
        """Where the page is."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def __enter__(self) -> ReviewServer:
        self._thread.start()
        deadline = time.monotonic() + 10.0
        while not self.server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            self.close()
            raise ConfigError(f"serve: the review page did not start on {self.url}")
        log.info("review page on %s", self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and release the socket."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        self.sock.close()


def serve_port(cfg: DictConfig, default: int | None = None) -> int | None:
    """``serve.port`` checked (``default`` when null), after the password rule for ``serve.host``.

    A run calls this before loading any model, so a wrong port or a missing password
    ends it at once, in one line.

    Raises:
        ConfigError: the port is not 0-65535, or the host is not loopback and no password is set.
    """
    page_password(str(cfg.serve.host))
    port = cfg.serve.port if cfg.serve.port is not None else default
    return None if port is None else check_port(port)


def review_app(cfg: DictConfig, run_dir: Path | None = None, board: Any = None) -> Any:
    """The app for ``cfg``'s site, with the password checked against ``serve.host``."""
    from vizoflow.review.app import create_app
    from vizoflow.review.site import ReviewSite

    password = page_password(str(cfg.serve.host))
    return create_app(ReviewSite.from_config(cfg, run_dir=run_dir, board=board), password)


def serve(cfg: DictConfig) -> None:
    """``mode=serve``: the review page over the site's runs until Ctrl-C."""
    import signal

    port = serve_port(cfg, DEFAULT_PORT)
    server = ReviewServer(review_app(cfg), str(cfg.serve.host), port)
    stopped = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stopped.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with server:
            print(f"vizoflow: review page of site '{cfg.site_name}' on {server.url} (Ctrl-C stops)", flush=True)
            while not stopped.wait(0.5) and server.alive:
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not stopped.is_set():
        raise VizoflowError("the review page's server stopped on its own (see the log above)")

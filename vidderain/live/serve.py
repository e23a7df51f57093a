"""``vidderain preview SOURCE --serve [HOST:]PORT``: the derained stream for browsers, VLC and NVRs.

An aiohttp app on a thread and event loop of its own:

- ``/``: a page with the live stream, an input | output toggle and the live figures;
- ``/stream.mjpg``: multipart JPEG (``?view=output``, the default, or ``?view=side``: input | output);
- ``/snapshot.jpg`` (same views) and ``/stats`` (JSON).

The preview hands over its newest (input, output) pair and figures in O(1) and never waits for the server.
Each view is JPEG-encoded once per new frame, however many clients watch it, and every client waits for
the next frame number: a slow client skips frames, and a stalled one blocks only its own coroutine (the
socket buffer is bounded; after ``STALLED_CLIENT_S`` it is dropped), so no client adds latency or memory to
the pipeline or to the other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import ipaddress
import json
import secrets
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

import cv2
import numpy as np

from vidderain.errors import VidderainError

JPEG_QUALITY = 85
BOUNDARY = "vidderain-frame"
STALLED_CLIENT_S = 20.0  # a client that takes no bytes for this long is dropped
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
VIEWS = ("output", "side")
DEFAULT_PORT_HOST = "127.0.0.1"
TOKEN_BYTES = 18


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    token: str | None = None

    @property
    def local(self) -> bool:
        return is_loopback(self.host)

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?token={self.token}" if self.token else ""
        return f"http://{host}:{self.port}{path}{query}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_serve_address(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT``; the host defaults to 127.0.0.1."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_PORT_HOST
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise VidderainError(f"--serve takes [HOST:]PORT with a port from 0 to 65535, got {text!r}")
    return host, number


def serve_options(address: str, token: str | None, warn) -> ServeOptions:
    """Check the address; a non-local bind without a token gets a generated one and a loud warning."""
    if importlib.util.find_spec("aiohttp") is None:
        raise VidderainError("--serve needs aiohttp: pip install 'vidderain[serve]'")
    host, port = parse_serve_address(address)
    if token is not None and not token:
        raise VidderainError("--serve-token must not be empty")
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(TOKEN_BYTES)
        warn(
            f"WARNING: --serve {address} is reachable from other machines and no --serve-token was given; "
            f"generated token {token} (every request must carry ?token=... or 'Authorization: Bearer ...')"
        )
    return ServeOptions(host, port, token)


def page_html() -> str:
    return resources.files("vidderain.live").joinpath("serve_page.html").read_text()


class LatestFrame:
    """The newest (input, output) pair and the figures; the preview's thread writes, the loop reads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.number = 0
        self.pair: tuple[np.ndarray, np.ndarray] | None = None
        self.figures: dict[str, Any] = {}


class FrameServer:
    """The web app on its own thread. ``start`` binds (a clear error if it cannot), ``publish`` hands
    over a frame without waiting, ``stop`` ends every client and the thread."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.latest = LatestFrame()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.clients = 0
        self.served = 0  # JPEG parts sent, over all clients
        self.port = options.port
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._notify_pending = False
        self.tasks: set[asyncio.Task] = set()

    # -- the preview's side --------------------------------------------------------------------------
    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="serve", daemon=True)
        self.thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise VidderainError(f"the web server did not start within {START_TIMEOUT_S:.0f} s")
        if self._start_error is not None:
            raise VidderainError(
                f"cannot serve on {self.options.host}:{self.options.port}: {self._start_error}"
            )

    def publish(self, rainy: np.ndarray, derained: np.ndarray, figures: dict[str, Any]) -> None:
        with self.latest.lock:
            self.latest.number += 1
            self.latest.pair = (rainy, derained)
            self.latest.figures = figures
            if self._notify_pending or self.loop is None:
                return
            self._notify_pending = True  # one wake-up in flight at most, however fast frames come
        self.loop.call_soon_threadsafe(self._wake)

    def stop(self) -> None:
        if self.loop is None or self.thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        with contextlib.suppress(Exception):  # stopping must not fail the run; the thread is a daemon
            future.result(STOP_TIMEOUT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(STOP_TIMEOUT_S)

    def url(self, path: str = "/") -> str:
        return ServeOptions(self.options.host, self.port, self.options.token).url(path)

    # -- the loop's side -----------------------------------------------------------------------------
    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as error:  # reported by start()
            self._start_error = error
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()
        self.loop.close()

    async def _serve(self) -> None:
        from aiohttp import web

        self.new_frame = asyncio.Condition()
        self.closing = False
        self.encoded: dict[str, tuple[int, bytes]] = {}
        self.encode_locks = {view: asyncio.Lock() for view in VIEWS}
        app = web.Application(middlewares=[self._check_token])
        app.router.add_get("/", self._page)
        app.router.add_get("/stream.mjpg", self._stream)
        app.router.add_get("/snapshot.jpg", self._snapshot)
        app.router.add_get("/stats", self._stats)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=STOP_TIMEOUT_S)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.options.host, self.options.port)
        await site.start()
        self.port = self.runner.addresses[0][1]  # the real port when 0 asked for any free one

    def _wake(self) -> None:
        async def notify() -> None:
            async with self.new_frame:
                self.new_frame.notify_all()

        with self.latest.lock:
            self._notify_pending = False
        task = asyncio.ensure_future(notify())
        self.tasks.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self.tasks.discard)

    async def _shutdown(self) -> None:
        self.closing = True
        async with self.new_frame:
            self.new_frame.notify_all()
        await self.runner.cleanup()

    async def _jpeg(self, view: str) -> tuple[int, bytes] | None:
        """The newest frame of ``view`` as JPEG, encoded once per frame (off the loop: cv2 frees the GIL)."""
        async with self.encode_locks[view]:
            with self.latest.lock:
                number, pair = self.latest.number, self.latest.pair
            if pair is None:
                return None
            cached = self.encoded.get(view)
            if cached is not None and cached[0] == number:
                return cached
            picture = np.concatenate(pair, axis=1) if view == "side" else pair[1]
            data = await asyncio.get_running_loop().run_in_executor(None, encode_jpeg, picture)
            self.encoded[view] = (number, data)
            return self.encoded[view]

    # -- handlers ------------------------------------------------------------------------------------
    @staticmethod
    def _view(request) -> str:
        from aiohttp import web

        view = request.query.get("view", "output")
        if view not in VIEWS:
            raise web.HTTPBadRequest(text=f"view must be one of {', '.join(VIEWS)}\n")
        return view

    @property
    def _check_token(self):
        from aiohttp import web

        token = self.options.token

        @web.middleware
        async def check(request, handler):
            if token is not None:
                given = request.query.get("token", "")
                header = request.headers.get("Authorization", "")
                if header.startswith("Bearer "):
                    given = header.removeprefix("Bearer ")
                if not secrets.compare_digest(given.encode(), token.encode()):
                    raise web.HTTPUnauthorized(text="a valid token is needed: ?token=... or Bearer\n")
            return await handler(request)

        return check

    async def _page(self, request):
        from aiohttp import web

        return web.Response(text=page_html(), content_type="text/html", headers=NO_CACHE)

    async def _stats(self, request):
        from aiohttp import web

        with self.latest.lock:
            figures = dict(self.latest.figures)
        figures |= {"clients": self.clients, "served_frames": self.served}
        return web.Response(text=json.dumps(figures), content_type="application/json", headers=NO_CACHE)

    async def _snapshot(self, request):
        from aiohttp import web

        encoded = await self._jpeg(self._view(request))
        if encoded is None:
            raise web.HTTPServiceUnavailable(text="no frame derained yet\n", headers={"Retry-After": "1"})
        return web.Response(body=encoded[1], content_type="image/jpeg", headers=NO_CACHE)

    async def _stream(self, request):
        from aiohttp import web

        view = self._view(request)
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}", **NO_CACHE}
        )
        await response.prepare(request)
        self.clients += 1
        sent = 0
        try:
            while not self.closing:
                encoded = await self._jpeg(view)
                if encoded is None or encoded[0] == sent:
                    async with self.new_frame:  # wait for a newer frame than the one this client has
                        await self.new_frame.wait_for(
                            lambda sent=sent: self.closing or self.latest.number != sent
                        )
                    continue
                sent, data = encoded
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                await asyncio.wait_for(response.write(head.encode() + data + b"\r\n"), STALLED_CLIENT_S)
                self.served += 1
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the client went away or stalled: only its own stream ends
        finally:
            self.clients -= 1
        return response


NO_CACHE = {"Cache-Control": "no-store"}


def encode_jpeg(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()

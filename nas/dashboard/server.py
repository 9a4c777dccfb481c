"""`nas dashboard`: a read-only local web server for one or several search workdirs.

The standard library's threading HTTP server is enough for a page one person polls every few seconds,
and adds no dependency; the charts are plotly.js, served from the installed `plotly` package (no network).
Only GET is answered: nothing the server does can change a file.
"""

from __future__ import annotations

import errno
import json
import logging
import re
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import importlib.util
from importlib import resources
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from nas.dashboard.views import SearchView, SearchViews, compare_views
from nas.errors import ConfigError, NASError

log = logging.getLogger(__name__)

STATIC = {"app.js": "text/javascript", "app.css": "text/css", "index.html": "text/html"}


def plotly_js() -> bytes:
    """plotly.js as shipped inside the `plotly` Python package (the page never loads it from a CDN)."""
    return resources.files("plotly").joinpath("package_data/plotly.min.js").read_bytes()


def static_file(name: str) -> bytes:
    return resources.files("nas.dashboard").joinpath("static", name).read_bytes()


def to_json(value: Any) -> bytes:
    """Strict JSON (metrics were made finite-or-null by the views)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()


LIST_PARAMS = ("objectives", "keys")  # comma-separated lists of names in a query


def parse_query(raw: str) -> dict[str, list[str]]:
    """A query string as name -> values, like `parse_qs`, except that a list parameter (`LIST_PARAMS`) is split at
    its literal commas *before* decoding: a name holding a comma (sent as %2C) stays one name."""
    out: dict[str, list[str]] = {}
    for part in raw.split("&"):
        name, _, value = part.partition("=")
        name = unquote_plus(name)
        values = [unquote_plus(v) for v in (value.split(",") if name in LIST_PARAMS else [value])]
        out.setdefault(name, []).extend(v for v in values if v)
    return {k: v for k, v in out.items() if v}


class NotFound(KeyError):
    """A resource the path names that does not exist (a 404), with the sentence that says so."""

    def __str__(self) -> str:
        return str(self.args[0])


def api(views: Sequence[SearchView], path: str, query: dict[str, list[str]]) -> Any:
    """The JSON answer to an API path (shared by the server and the static report); KeyError: not found.
    The list of searches first looks for workdirs started below the folders given since (`SearchViews.rescan`)."""
    if path == "/api/searches" and isinstance(views, SearchViews):
        views.rescan()
    by_key = {v.key: v for v in views}
    if path == "/api/searches":
        answer = []
        for v in views:
            with v.lock:
                v.refresh()
                answer.append(v.summary())
        return answer
    if path == "/api/compare":
        # keys are \w+; one named twice is one run, not two independent ones
        keys = list(dict.fromkeys(k for part in query.get("keys", []) for k in part.split(",") if k))
        unknown = [k for k in keys if k not in by_key]
        if unknown:
            raise KeyError(unknown[0])
        return compare_views([by_key[k] for k in keys], query.get("metric", [""])[0].strip() or None)
    m = re.fullmatch(r"/api/search/(\w+)(?:/(front|importance|parallel|trial/(\d+)))?", path)
    if m is None or m.group(1) not in by_key:
        raise KeyError(path)
    view = by_key[m.group(1)]
    with view.lock:
        return _answer(view, m, query)


def _answer(view: SearchView, m: re.Match[str], query: dict[str, list[str]]) -> Any:
    view.refresh()
    if view.error is not None or view.problem is None:
        return {"summary": view.summary(), "trials": [], "history": None}
    if m.group(2) is None:
        text = query.get("since", ["0"])[0]
        if not re.fullmatch(r"[0-9]+", text):  # str.isdigit() takes "²", which int() refuses
            raise ConfigError(f"since: expected a trial number (0, 1, ...), got {text!r}")
        since = int(text)
        return {"summary": view.summary(), "trials": view.trials_since(since), "history": view.history()}
    if m.group(2) == "front":
        names = [n for n in query.get("objectives", []) if n.strip()]  # parse_query split them
        return view.front(names or None)
    if m.group(2) == "importance":
        return view.importance(query.get("metric", [""])[0].strip() or None)
    if m.group(2) == "parallel":
        return view.parallel(query.get("metric", [""])[0].strip() or None)
    number = int(m.group(3))
    if number >= len(view.rows):
        raise NotFound(f"{view.name}: no trial {number} (the journal holds {len(view.rows)})")
    return view.trial(number)


class Handler(BaseHTTPRequestHandler):
    """GET only: the page, its static files, plotly.js and the JSON API; other methods are refused."""

    views: Sequence[SearchView] = ()
    server_version = "nas-dashboard"

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        url = urlsplit(self.path)
        try:
            if url.path in ("/", "/index.html"):
                self._send(static_file("index.html"), "text/html; charset=utf-8")
            elif url.path == "/static/plotly.min.js":
                self._send(plotly_js(), "text/javascript", cache=True)
            elif url.path.startswith("/static/") and url.path[len("/static/"):] in STATIC:
                name = url.path[len("/static/"):]
                self._send(static_file(name), STATIC[name] + "; charset=utf-8")
            elif url.path.startswith("/api/"):
                self._send(to_json(api(self.views, url.path, parse_query(url.query))), "application/json")
            else:
                self._error(HTTPStatus.NOT_FOUND, f"{url.path}: not found")
        except NotFound as e:
            self._error(HTTPStatus.NOT_FOUND, str(e))
        except KeyError:
            self._error(HTTPStatus.NOT_FOUND, f"{url.path}: not found")
        except (NASError, ValueError) as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except BrokenPipeError:
            pass  # the browser went away mid-answer

    def _refuse(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "the dashboard only reads: GET is the one method it answers")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    def _send(self, body: bytes, kind: str, cache: bool = False) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=86400" if cache else "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        body = to_json({"error": message})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the standard library's signature)
        log.debug("%s " + format, self.address_string(), *args)


def check_port(port: int) -> int:
    """`port` when it is one a server can bind (0: any free one), else a ConfigError naming the range."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: must be 1..65535 (or 0 for any free port)")
    return port


def make_server(views: Sequence[SearchView], host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """A server for `views` bound to host:port (port 0: a free one); a port out of range or in use is one
    ConfigError."""
    check_port(port)
    if importlib.util.find_spec("plotly") is None:  # the page would load without its charts, and say nothing
        raise ConfigError("the dashboard's charts are plotly.js from the 'plotly' package, which is not installed "
                          "(pip install plotly)")
    # a SearchViews list is kept (it grows by rescans); any other sequence is frozen as given
    handler = type("BoundHandler", (Handler,), {"views": views if isinstance(views, SearchViews) else tuple(views)})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OverflowError as e:  # what bind() says of a port out of range, should one get here
        raise ConfigError(f"--port {port}: {e}") from None
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is in use (another dashboard?): choose another with "
                              "--port N, or --port 0 for any free one") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    server.daemon_threads = True
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"

"""The web console at ``/ui/``: static files built from ``console/`` (see its build.mjs).

Not an API operation, so not in the spec: like Swagger UI at ``/docs``, it is served
beside the API by a middleware. The page needs no key (it asks for one and calls the
API with it). ``index.html`` answers every route below ``/ui/`` (the console routes in
the browser) with ``<base href>`` set to where the app is mounted (``root_path``), so
its relative asset and API URLs work behind a proxy prefix. Hashed assets are
immutable; the page itself is never cached, so a new release is picked up at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable

from starlette.responses import RedirectResponse, Response

STATIC_DIR = Path(__file__).resolve().parents[2] / "console_static"

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
IMMUTABLE = "public, max-age=31536000, immutable"
# The page runs only its own script and talks only to this origin.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'self'; form-action 'none'; frame-ancestors 'none'"
    ),
}


class ConsoleMiddleware:
    PREFIX = "/ui"

    def __init__(self, app: Any, directory: Path = STATIC_DIR) -> None:
        self.app: Callable[[Any, Any, Any], Awaitable[None]] = app
        self.directory = directory
        self._index = (directory / "index.html").read_text("utf-8") if (directory / "index.html").is_file() else None
        # Asset name -> bytes, read once: the files are part of the release.
        self._assets = {p.name: p.read_bytes() for p in (directory / "assets").glob("*") if p.is_file()}

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        path = self._route_path(scope) if scope["type"] == "http" else None
        if path is None or not (path == self.PREFIX or path.startswith(self.PREFIX + "/")):
            return self.app(scope, receive, send)  # no frame of its own (services.py, "Pass-through")
        return self._answer(scope, path)(scope, receive, send)

    @staticmethod
    def _route_path(scope: Any) -> str:
        """The path below the mount point (uvicorn's ``path`` includes ``root_path``)."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        return path[len(root):] if root and path.startswith(root) else path

    def _answer(self, scope: Any, path: str) -> Response:
        root = scope.get("root_path", "").rstrip("/")
        if scope["method"] not in ("GET", "HEAD"):
            return Response(status_code=405, headers={"Allow": "GET, HEAD", **SECURITY_HEADERS})
        if path == self.PREFIX:
            return RedirectResponse(f"{root}{self.PREFIX}/", status_code=308)
        rest = path[len(self.PREFIX) + 1:]
        if rest.startswith("assets/"):
            return self._asset(rest[len("assets/"):])
        if self._index is None:
            return Response("The console was not built (console/: npm run build).", 404, media_type="text/plain")
        body = self._index.replace('<base href="/ui/">', f'<base href="{root}{self.PREFIX}/">', 1)
        return Response(body, media_type=MEDIA_TYPES[".html"], headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})

    def _asset(self, name: str) -> Response:
        body = self._assets.get(name)
        if body is None:
            return Response("No such file.", 404, media_type="text/plain", headers={"Cache-Control": "no-cache"})
        media_type = MEDIA_TYPES.get(Path(name).suffix, "application/octet-stream")
        return Response(body, media_type=media_type, headers={"Cache-Control": IMMUTABLE, **SECURITY_HEADERS})

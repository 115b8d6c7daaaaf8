"""``GET /openapi.json`` and ``/openapi.yaml``: the routed spec as users should read it.

The spec connexion routes from carries extensions that only the server reads
(which module handles an operation, which function checks a key, which skill a
concrete path runs); they mean nothing to a client, a code generator or Swagger UI,
and they name the server's internals. This middleware answers the two spec paths
itself with those keys removed, and with a ``servers`` entry Swagger UI can show
(connexion serves ``[{url: ''}]``, an empty "Servers" dropdown): the path the app
is mounted at (``root_path`` behind a proxy), relative to wherever the spec came from.

It sits inside ``DocsGuardMiddleware``, so ``SKILLRUN_PUBLIC_DOCS=0`` guards it too.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Awaitable, Callable

import yaml
from starlette.responses import Response

from .spec import served_spec

# Read by connexion (routing, security) and by our resolver (spec.py); never served.
INTERNAL_KEYS = frozenset({"x-openapi-router-controller", "x-apikeyInfoFunc", "x-skillrun-skill"})
SERVER_DESCRIPTION = "This server (paths are relative to the address the spec was fetched from)"


def strip_internal(node: Any) -> Any:
    """A copy of ``node`` without the ``INTERNAL_KEYS``, at any depth."""
    if isinstance(node, dict):
        return {k: strip_internal(v) for k, v in node.items() if k not in INTERNAL_KEYS}
    if isinstance(node, list):
        return [strip_internal(v) for v in node]
    return node


def public_spec(routed: dict[str, Any], root_path: str = "") -> dict[str, Any]:
    """The contract users read: without the templated execute operations once concrete
    ones exist (``spec.served_spec``) and without the internal keys."""
    spec: dict[str, Any] = strip_internal(copy.deepcopy(served_spec(routed)))
    spec["servers"] = [{"url": root_path.rstrip("/") or "/", "description": SERVER_DESCRIPTION}]
    return spec


class ServedSpecMiddleware:
    PATHS = {"/openapi.json": "application/json", "/openapi.yaml": "text/yaml"}

    def __init__(self, app: Any, spec: dict[str, Any]) -> None:
        self.app: Callable[[Any, Any, Any], Awaitable[None]] = app
        self.spec = spec
        # (path, root_path) -> body: the spec is the same for every request of this app.
        self._bodies: dict[tuple[str, str], bytes] = {}

    def _body(self, path: str, root_path: str) -> bytes:
        key = (path, root_path)
        if key not in self._bodies:
            spec = public_spec(self.spec, root_path)
            if path.endswith(".json"):
                text = json.dumps(spec, ensure_ascii=False)
            else:
                text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
            self._bodies[key] = text.encode("utf-8")
        return self._bodies[key]

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        media_type = self.PATHS.get(scope["path"]) if scope["type"] == "http" else None
        if media_type is None or scope["method"] != "GET":
            return self.app(scope, receive, send)  # no frame of its own (services.py, "Pass-through")
        body = self._body(scope["path"], scope.get("root_path", ""))
        return Response(body, media_type=media_type)(scope, receive, send)

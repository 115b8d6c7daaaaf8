"""connexion's handler call and key check, with what they build per operation built once.

connexion 3's ``AsyncOperation.fn`` makes a new ``StarletteDecorator`` on every
request, and that decorator re-inspects the handler's signature
(``inspect.signature``) and builds a new URI parser from the operation's
parameters each time: ``inspect`` alone was ~6% of ``/execute``'s sampled CPU in
``bench/profiler.py``. Both depend only on the operation, so here they are made on
its first request and kept. What a request gets (arguments, body, response) is
unchanged: the same decorators run, only not rebuilt.

Its API-key check likewise calls ``inspect.signature`` on the key callback twice a
request (``_accepts_kwarg``); the answer is kept per callback.
"""

from __future__ import annotations

from typing import Any, Callable

from connexion.apps.asynchronous import AsyncApi, AsyncOperation
from connexion.context import _operation, _receive, _scope
from connexion.decorators import StarletteDecorator
from connexion.security import SECURITY_HANDLERS, ApiKeySecurityHandler


class _CachedDecorator(StarletteDecorator):
    """connexion's decorator whose URI parser is built once per spec operation."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Keyed by the operation itself (kept alive here, so no id is ever reused).
        self._parsers: dict[Any, Any] = {}

    @property
    def uri_parser(self) -> Any:
        op = _operation.get()
        parser = self._parsers.get(op)
        if parser is None:
            parser = self._parsers[op] = super().uri_parser
        return parser


class CachedAsyncOperation(AsyncOperation):
    """An operation whose decorated handler is built on its first call, then reused."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._decorator = _CachedDecorator(pythonic_params=self.pythonic_params, jsonifier=self.jsonifier)
        self._decorated: Callable[..., Any] | None = None

    @property
    def fn(self) -> Callable[..., Any]:
        if self._decorated is None:
            self._decorated = self._decorator.decorate(self._fn)
        decorated = self._decorated
        decorator = self._decorator

        async def call() -> Any:
            request = decorator.framework.get_request(
                uri_parser=decorator.uri_parser, scope=_scope.get(), receive=_receive.get()
            )
            return await decorated(request)

        return call


class CachedAsyncApi(AsyncApi):
    def make_operation(self, operation: Any) -> AsyncOperation:
        return CachedAsyncOperation.from_operation(
            operation, pythonic_params=self.pythonic_params, jsonifier=self.jsonifier
        )


class CachedApiKeyHandler(ApiKeySecurityHandler):
    """connexion's API-key check; whether the callback takes a keyword is asked once."""

    def __init__(self) -> None:
        super().__init__()
        self._accepts: dict[tuple[Callable[..., Any], str], bool] = {}

    def _accepts_kwarg(self, func: Callable[..., Any], keyword: str) -> bool:
        accepts = self._accepts.get((func, keyword))
        if accepts is None:
            accepts = self._accepts[(func, keyword)] = ApiKeySecurityHandler._accepts_kwarg(func, keyword)
        return accepts


def security_map() -> dict[str, Any]:
    """connexion's security handlers, the API-key one replaced by ``CachedApiKeyHandler``."""
    return {**SECURITY_HANDLERS, "apiKey": CachedApiKeyHandler}

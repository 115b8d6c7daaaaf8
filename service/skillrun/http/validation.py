"""Request body validation: 400 for bodies that are not JSON, 422 naming each bad field.

connexion answers 500 for a non-UTF-8 body and 400 for schema errors; here a body
that cannot be read as JSON is a 400 and a JSON body that breaks the schema is a
422 whose ``errors`` name every failing field (``inputs.max_sentences``).

connexion also guesses ``application/json`` for a request without a Content-Type
(the handler then gets raw bytes: a 500) and takes a body without Content-Length
for no body at all (a chunked JSON body got 400 "RequestBody is required"). Here
a missing Content-Type is a 415 and the body is whatever arrives.

A bad parameter (e.g. an ``x-trace-id`` that breaks its pattern) stays a 400, but
its detail is one line naming the parameter instead of a jsonschema dump.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, cast

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem, ProblemException, UnsupportedMediaTypeProblem
from connexion.json_schema import Draft4RequestValidator
from connexion.utils import is_null, is_nullable
from connexion.validators import FormDataValidator, MultiPartFormDataValidator, ParameterValidator
from connexion.validators.json import JSONRequestBodyValidator
from jsonschema import Draft4Validator, ValidationError
from jsonschema.exceptions import best_match
from starlette.datastructures import Headers

from ..engine.secret_inputs import has_secrets, secret_at
from .errors import TITLES, echo


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _field_errors(error: ValidationError, root: Any = None) -> list[dict[str, str]]:
    base = [echo(str(p)) for p in error.absolute_path]
    if error.validator == "required":
        required = cast("list[str]", error.validator_value)
        given = error.instance if isinstance(error.instance, dict) else {}
        missing = [r for r in required if r not in given]
        return [{"field": ".".join([*base, m]), "message": f"'{m}' is required"} for m in missing]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = cast("dict[str, Any]", error.schema)
        allowed = set((schema.get("properties") or {}).keys())
        extra = [k for k in error.instance if k not in allowed]
        return [{"field": ".".join([*base, echo(k)]), "message": f"unknown field '{echo(k)}'"} for k in extra]
    return [{"field": ".".join(base) or "(body)", "message": _message(error, root)}]


def _message(error: ValidationError, root: Any) -> str:
    """jsonschema's message, quoting only a prefix of a long string it failed on, and
    never a secret input (see engine.secret_inputs)."""
    holds_secret = isinstance(error.instance, (dict, list)) and has_secrets(error.schema)
    if holds_secret or secret_at(root, list(error.absolute_path)):
        return f"is not valid ({error.validator}: {json.dumps(error.validator_value)}); a secret input is not echoed"
    value = error.instance
    if isinstance(value, str) and len(value) > 64:
        return _short(error.message.replace(repr(value), repr(echo(value)), 1))
    return _short(error.message)


def _short(message: str, limit: int = 200) -> str:
    """jsonschema quotes the failing value; a 500 KB input must not come back whole."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


# JSON may escape a UTF-16 surrogate alone ("\ud800"): valid JSON, but not Unicode
# text, and skills (CEL, stores) cannot take it. Escaped pairs decode to one character.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _is_text(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _reject_lone_surrogates(body: Any) -> None:
    """422 naming every field (or key) whose string holds a lone surrogate."""
    bad: list[str] = []
    stack: list[tuple[list[str], Any]] = [([], body)]  # iterative: bodies may be deep
    while stack:
        path, value = stack.pop()
        if isinstance(value, str) and not _is_text(value):
            bad.append(".".join(path) or "(body)")
        elif isinstance(value, dict):
            for k, v in value.items():
                key = k
                if not _is_text(k):
                    key = echo(k.encode("utf-8", "backslashreplace").decode())
                    bad.append(".".join([*path, key]))
                stack.append(([*path, key], v))
        elif isinstance(value, list):
            stack.extend(([*path, str(i)], v) for i, v in enumerate(value))
    if bad:
        message = "holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text"
        fields = [{"field": f, "message": message} for f in sorted(bad)]
        detail = "; ".join(f"{fe['field']}: {fe['message']}" for fe in fields)
        raise ProblemException(status=422, title=TITLES[422], detail=detail, ext={"errors": fields})


class CompiledSchemas:
    """Validators compiled once per schema object, not once per request.

    connexion makes a new body and parameter validator for every request, and each
    compiled its jsonschema validator again (a registry, a resource, the keyword
    table): ~0.1 ms of a request in bench/profiler.py. The schemas are the
    operation's own dicts, the same objects on every request, so the compiled
    validator is kept by identity (holding the schema, so its id is never reused).
    Bounded: a process builds few apps, but tests build hundreds.
    """

    def __init__(self, compile: Callable[[Any], Any], limit: int = 4096) -> None:
        self._compile = compile
        self._limit = limit
        self._compiled: dict[int, tuple[Any, Any]] = {}

    def __call__(self, schema: Any) -> Any:
        hit = self._compiled.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
        if len(self._compiled) >= self._limit:
            self._compiled.clear()
        validator = self._compile(schema)
        self._compiled[id(schema)] = (schema, validator)
        return validator


class JSONBodyValidator(JSONRequestBodyValidator):
    # On the class: connexion constructs this per request, with no per-operation place.
    _compiled = CompiledSchemas(lambda schema: Draft4RequestValidator(schema, format_checker=Draft4Validator.FORMAT_CHECKER))

    @property
    def _validator(self) -> Any:
        return self._compiled(self._schema)

    async def wrap_receive(self, receive: Any, *, scope: Any) -> tuple[Any, Any]:
        # Read to the end whatever the framing (Content-Length or chunked);
        # BodyLimitMiddleware's receive stops a body over the limit (413) meanwhile.
        messages: list[Any] = []
        more_body = True
        while more_body:
            message = await receive()
            messages.append(message)
            more_body = message.get("more_body", False)
        raw = b"".join(m.get("body", b"") for m in messages)
        if not raw:
            if self._required:
                raise BadRequestProblem(detail="The request body must not be empty.")
        elif "content-type" not in Headers(scope=scope):
            raise UnsupportedMediaTypeProblem(detail="The request has no Content-Type; send application/json.")
        else:
            body = self._decode(raw)
            if not (body is None and self._nullable):
                self._validate(body)
        return self._insert_messages(receive, messages=messages), scope

    @staticmethod
    def _decode(raw: bytes) -> Any:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequestProblem(detail=f"The body is not UTF-8 (byte {exc.start}).") from None
        try:
            body = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            raise BadRequestProblem(detail=f"The body is not valid JSON: {exc}") from None
        except RecursionError:
            raise BadRequestProblem(detail="The body is nested too deeply to read.") from None
        if _SURROGATE_ESCAPE.search(text):
            _reject_lone_surrogates(body)
        return body

    def _validate(self, body: Any) -> Any:
        # An empty body never gets here (400 above); a JSON ``null`` is a body that
        # breaks the schema like any other (422).
        errors = sorted(self._validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        if not errors:
            return body
        fields = [fe for e in errors for fe in _field_errors(e, self._validator.schema)]
        detail = "; ".join(f"{fe['field']}: {fe['message']}" for fe in fields)
        raise ProblemException(status=422, title=TITLES[422], detail=detail, ext={"errors": fields})


class ParamValidator(ParameterValidator):
    # As JSONBodyValidator's: connexion constructs this per request.
    _compiled = CompiledSchemas(lambda schema: Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER))

    @classmethod
    def validate_parameter(
        cls, parameter_type: str, value: Any, param: dict[str, Any], param_name: Any = None
    ) -> Any:
        if value is None or (is_nullable(param) and is_null(value)):
            # Missing (required or not) or null: connexion's own answer is clear.
            return ParameterValidator.validate_parameter(parameter_type, value, param, param_name)
        validator = cls._compiled(param.get("schema", param))
        error = best_match(validator.iter_errors(value))
        return None if error is None else f"{parameter_type} parameter '{param['name']}': {_message(error, None)}"


VALIDATOR_MAP = {
    "parameter": ParamValidator,
    "body": MediaTypeDict(
        {
            "*/*json": JSONBodyValidator,
            "application/x-www-form-urlencoded": FormDataValidator,
            "multipart/form-data": MultiPartFormDataValidator,
        }
    ),
}

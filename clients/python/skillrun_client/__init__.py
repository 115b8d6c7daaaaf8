"""Skillrun client: typed events, sync and async streams that resume by themselves.

    from skillrun_client import Client
    with Client() as client:                     # SKILLRUN_BASE_URL, SKILLRUN_API_KEY
        with client.stream("text.summarize", inputs={"text": "..."}) as stream:
            for event in stream:
                print(event.type, event.message)
            result = stream.result()

Every model of the contract is in :mod:`skillrun_client.models`.
"""

from ._client import DEFAULT_BASE_URL, AsyncClient, Client, RequestOptions
from ._decoder import ServerSentEvent, SSEDecoder
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    RunFailedError,
    SkillrunError,
    StreamError,
    ValidationError,
)
from ._generated.models import (
    DoneEvent,
    GateWarningEvent,
    SkillCompletedEvent,
    SkillResumedEvent,
    SkillStartEvent,
    StepCompletedEvent,
    StepDegradedEvent,
    StepFailedEvent,
    StepFallbackEvent,
    StepRetryingEvent,
    StepSkippedEvent,
    StepStartEvent,
    StepWaitingEvent,
    StepDeltaEvent,
)
from ._retry import Backoff
from ._streaming import AsyncStream, Stream
from ._text import TextChunk
from ._types import Event, RunResult, StreamEvent, UnknownEvent

__version__ = "0.1.0"

__all__ = [
    "Client",
    "AsyncClient",
    "Stream",
    "AsyncStream",
    "TextChunk",
    "RequestOptions",
    "Backoff",
    "DEFAULT_BASE_URL",
    "Event",
    "StreamEvent",
    "UnknownEvent",
    "RunResult",
    "SkillStartEvent",
    "StepStartEvent",
    "StepCompletedEvent",
    "StepSkippedEvent",
    "StepDegradedEvent",
    "StepFailedEvent",
    "StepRetryingEvent",
    "StepFallbackEvent",
    "GateWarningEvent",
    "SkillCompletedEvent",
    "SkillResumedEvent",
    "StepWaitingEvent",
    "StepDeltaEvent",
    "DoneEvent",
    "SSEDecoder",
    "ServerSentEvent",
    "SkillrunError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "NotFoundError",
    "ConflictError",
    "ValidationError",
    "RateLimitError",
    "InternalServerError",
    "APIConnectionError",
    "APITimeoutError",
    "StreamError",
    "RunFailedError",
]

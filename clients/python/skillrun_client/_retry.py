"""When to try again, and after how long (sans-IO: no sleeping, no sending here).

Two policies share one backoff:

* :class:`RequestRetry`, for requests made before a run exists (and plain reads):
  connection errors, 429, 502, 503 and 504 are retried, honouring ``Retry-After`` up to
  ``max_retry_after`` seconds (a longer one is raised at once); anything else is raised as is. Starting a run is safe to retry because the client
  sends the same ``Idempotency-Key`` on every attempt.
* the stream's resume policy (``_streaming.ResumeState``) uses :class:`Backoff` with
  the server's ``retry:`` as the first delay.

The I/O loops ask ``policy.next_delay(error)``: a number of seconds to wait, or the
error raised when it should not (or may no more) be retried.

Every default comes from the spec's ``info.x-skillrun-client-defaults`` (``_generated/defaults.py``),
the table the JS client generates its defaults from too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ._generated import defaults
from ._exceptions import APIConnectionError, APIStatusError, RateLimitError, SkillrunError, retry_after

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits ``initial * multiplier**(n-1)``,
    capped at ``maximum``, stretched by a random factor in ``[1, 1 + jitter]`` so that
    clients dropped together do not come back together (and never sooner than asked).
    """

    initial: float = defaults.BACKOFF_INITIAL_MS / 1000
    maximum: float = defaults.BACKOFF_MAX_MS / 1000
    multiplier: float = defaults.BACKOFF_MULTIPLIER
    jitter: float = defaults.BACKOFF_JITTER
    rand: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def delay(self, attempt: int, first: float | None = None) -> float:
        """Seconds before attempt ``attempt`` (1-based); ``first`` replaces ``initial``."""
        base = self.initial if first is None else first
        # The exponent is capped: 2.0 ** 1024 is an OverflowError, and max_retries may be large.
        raw = min(max(self.maximum, base), base * self.multiplier ** min(attempt - 1, 64))
        return raw * (1 + self.jitter * self.rand())


class RetryPolicy(Protocol):
    def next_delay(self, error: SkillrunError) -> float:
        """Seconds to wait before trying again, or raise ``error`` (or another)."""
        ...  # pragma: no cover - protocol


def server_delay(error: SkillrunError) -> float | None:
    """The wait the server asked for in ``Retry-After``, if any."""
    if isinstance(error, RateLimitError):
        return error.retry_after
    if isinstance(error, APIStatusError):
        return retry_after(error.response.headers)
    return None


def is_retryable(error: SkillrunError) -> bool:
    if isinstance(error, APIStatusError):
        return error.status_code in RETRYABLE_STATUS
    return isinstance(error, APIConnectionError)


class RequestRetry:
    """Retries for one request; make a new one per request."""

    def __init__(self, max_retries: int, backoff: Backoff, max_retry_after: float = defaults.MAX_RETRY_AFTER_S) -> None:
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.attempts = 0

    def next_delay(self, error: SkillrunError) -> float:
        if not is_retryable(error) or self.attempts >= self.max_retries:
            raise error
        asked = server_delay(error)
        if asked is not None and asked > self.max_retry_after:
            raise error  # not worth hanging for: the caller decides
        self.attempts += 1
        return asked if asked is not None else self.backoff.delay(self.attempts)

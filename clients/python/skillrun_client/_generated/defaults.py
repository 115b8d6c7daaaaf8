"""Client defaults from openapi/skillrun.yaml (info.x-skillrun-client-defaults).

Do not edit: run clients/python/scripts/generate.py. The JS client generates the same table."""

from typing import Final

MAX_RETRIES: Final = 5
BACKOFF_INITIAL_MS: Final = 500
BACKOFF_MAX_MS: Final = 8000
BACKOFF_MULTIPLIER: Final = 2
BACKOFF_JITTER: Final = 0.25
IDLE_TIMEOUT_MS: Final = 45000
MAX_RETRY_AFTER_S: Final = 60

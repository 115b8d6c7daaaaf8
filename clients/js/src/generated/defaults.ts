/**
 * Client defaults from openapi/skillrun.yaml (info.x-skillrun-client-defaults).
 * Do not edit: run `npm run generate`. The Python client generates the same table.
 */
export const CLIENT_DEFAULTS = {
  max_retries: 5,
  backoff_initial_ms: 500,
  backoff_max_ms: 8000,
  backoff_multiplier: 2,
  backoff_jitter: 0.25,
  idle_timeout_ms: 45000,
  max_retry_after_s: 60,
} as const;

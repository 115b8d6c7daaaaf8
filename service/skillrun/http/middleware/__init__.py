"""ASGI middleware of the edge (rate limits, body limits, CORS, the docs guard)."""

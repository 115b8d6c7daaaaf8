"""The HTTP edge: the app, its middleware, the handlers and what they share (errors, SSE,
validation, the served spec). It builds on runs/ and engine/; neither imports it."""

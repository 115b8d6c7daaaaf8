"""Observability: Prometheus metrics, OpenTelemetry traces, structured logs.

``hub.Observability`` is the app's one object for all three (``services.observe``);
``context`` holds what the current task works on (light: ``capabilities`` import it).
"""

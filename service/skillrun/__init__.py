"""Skillrun: run declarative multi-step skills over HTTP and stream every step as SSE."""

__version__ = "0.1.0"

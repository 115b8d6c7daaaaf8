"""Settings from the environment (``SKILLRUN_*``), overridable by ``skillrun serve`` flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

BUNDLED_SKILLS = Path(__file__).resolve().parent / "skills"


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _list(name: str) -> list[str]:
    return [p.strip() for p in os.environ.get(name, "").split(",") if p.strip()]


@dataclass
class Settings:
    api_keys: list[str] = field(default_factory=list)
    api_keys_file: Path | None = None
    skill_dirs: list[Path] = field(default_factory=list)
    rate_limit: str = "60/minute"
    rate_limit_storage: str = "memory://"
    max_body_bytes: int = 1024 * 1024
    heartbeat_s: float = 15.0
    shutdown_grace_s: float = 10.0
    validate_responses: bool = False
    include_bundled_skills: bool = True
    # Origins a browser page may call from (CORS); "*" for any. None by default.
    cors_origins: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls) -> "Settings":
        keys_file = os.environ.get("SKILLRUN_API_KEYS_FILE")
        return cls(
            api_keys=_list("SKILLRUN_API_KEYS"),
            api_keys_file=Path(keys_file) if keys_file else None,
            skill_dirs=[Path(p) for p in _list("SKILLRUN_SKILLS")],
            rate_limit=os.environ.get("SKILLRUN_RATE_LIMIT") or "60/minute",
            rate_limit_storage=os.environ.get("SKILLRUN_RATE_LIMIT_STORAGE") or "memory://",
            max_body_bytes=_int("SKILLRUN_MAX_BODY_BYTES", 1024 * 1024),
            heartbeat_s=_float("SKILLRUN_HEARTBEAT_S", 15.0),
            shutdown_grace_s=_float("SKILLRUN_SHUTDOWN_GRACE_S", 10.0),
            validate_responses=_flag("SKILLRUN_VALIDATE_RESPONSES"),
            cors_origins=_list("SKILLRUN_CORS_ORIGINS"),
        )

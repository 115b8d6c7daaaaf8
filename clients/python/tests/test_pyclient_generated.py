"""The generated models are exactly what the spec generates now, and cover its events."""

from __future__ import annotations

import importlib.util
import typing
from pathlib import Path
from types import ModuleType

import yaml
from pydantic import BaseModel

from skillrun_client import models
from skillrun_client._generated import models as generated

CLIENT = Path(__file__).resolve().parent.parent


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pyclient_generate", CLIENT / "scripts" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_models_match_the_spec() -> None:
    generator = load_generator()
    committed = generator.TARGET.read_text(encoding="utf-8")
    assert committed == generator.render(), "stale: run python clients/python/scripts/generate.py"


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    generator = load_generator()
    generator.TARGET = tmp_path / "models.py"
    generator.DEFAULTS_TARGET = tmp_path / "defaults.py"
    assert generator.main(["--check"]) == 1  # missing counts as stale
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0


def test_committed_defaults_match_the_spec() -> None:
    generator = load_generator()
    assert generator.DEFAULTS_TARGET.read_text(encoding="utf-8") == generator.render_defaults()


def test_client_defaults_are_the_spec_table() -> None:
    """The two clients agree because both take retries, backoff, idle timeout and the longest
    Retry-After honoured from ``info.x-skillrun-client-defaults`` (the JS suite checks its side)."""
    from skillrun_client import Backoff, Client

    table = yaml.safe_load((CLIENT.parent.parent / "openapi" / "skillrun.yaml").read_text())["info"]["x-skillrun-client-defaults"]
    backoff = Backoff()
    with Client("http://127.0.0.1:1") as client:
        assert client.max_retries == table["max_retries"]
        assert client.idle_timeout * 1000 == table["idle_timeout_ms"]
        assert client.max_retry_after == table["max_retry_after_s"]
    assert (backoff.initial * 1000, backoff.maximum * 1000) == (table["backoff_initial_ms"], table["backoff_max_ms"])
    assert (backoff.multiplier, backoff.jitter) == (table["backoff_multiplier"], table["backoff_jitter"])


def test_event_data_classes_are_named_after_their_event() -> None:
    text = (CLIENT / "skillrun_client" / "_generated" / "models.py").read_text()
    assert "class Data" not in text
    assert models.StepStartEvent.model_fields["data"].annotation is models.StepStartData


def test_union_has_one_class_per_spec_event_type() -> None:
    spec = yaml.safe_load((CLIENT.parent.parent / "openapi" / "skillrun.yaml").read_text())
    mapping = spec["components"]["schemas"]["SkillEvent"]["discriminator"]["mapping"]
    union = typing.get_args(typing.get_args(generated.SkillEvent.__value__)[0])
    by_type = {typing.get_args(cls.model_fields["type"].annotation)[0]: cls.__name__ for cls in union}
    assert by_type == {t: ref.rsplit("/", 1)[1] for t, ref in mapping.items()}


def test_models_module_exports_every_generated_model() -> None:
    classes = {n for n, v in vars(generated).items() if isinstance(v, type) and issubclass(v, BaseModel) and v is not BaseModel}
    assert classes and classes | {"SkillEvent", "RunStatus", "EventType"} <= set(models.__all__)
    assert all(getattr(models, n) is getattr(generated, n) for n in classes)
    assert {"Event", "RunResult"} <= set(models.__all__)


def test_every_event_class_is_exported_at_the_top() -> None:
    import skillrun_client

    union = typing.get_args(typing.get_args(generated.SkillEvent.__value__)[0])
    assert {cls.__name__ for cls in union} <= set(skillrun_client.__all__)

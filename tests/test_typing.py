"""The service is typed strictly: mypy --strict over service/skillrun (config in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REQUIRE_ALL, ROOT


def test_the_service_is_mypy_strict_clean() -> None:
    try:
        import mypy  # noqa: F401
    except ImportError:
        if REQUIRE_ALL:
            pytest.fail("mypy is not installed (SKILLRUN_REQUIRE_ALL=1 forbids skipping)")
        pytest.skip("mypy is not installed")
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr

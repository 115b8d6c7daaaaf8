# pyright: reportUnsupportedDunderAll=false
# (`__all__` follows the generated module, whatever the spec adds.)
"""Every model of the contract (generated from openapi/skillrun.yaml), plus ``Event`` and ``RunResult``.

The generated module changes whenever the spec does; this module re-exports all of it.
"""

from ._generated import models as _generated
from ._generated.models import *  # noqa: F403
from ._types import Event as Event, RunResult as RunResult

__all__ = sorted(
    [n for n, v in vars(_generated).items() if getattr(v, "__module__", None) == _generated.__name__ and not n.startswith("_")]
    + ["Event", "RunResult"]
)

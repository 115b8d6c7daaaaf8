"""How to install an optional part of this package, as a command that works where it runs.

The package is on no index yet, so ``pip install 'skillrun-client[cli]'`` fails: from a
checkout, the hint names the client's directory relative to the working directory; from
an installed copy, it names the extra's own packages.
"""

from __future__ import annotations

import os
from pathlib import Path


def install_hint(extra: str, packages: str, module_file: str) -> str:
    """``pip install -e './clients/python[extra]'`` from a checkout, else ``pip install packages``."""
    project = Path(module_file).resolve().parent.parent
    pyproject = project / "pyproject.toml"
    if pyproject.is_file() and 'name = "skillrun-client"' in pyproject.read_text(encoding="utf-8"):
        relative = os.path.relpath(project)
        where = relative if relative == "." or relative.startswith(("..", "/")) else os.path.join(".", relative)
        return f"pip install -e '{where}[{extra}]'"
    return f"pip install {packages}"

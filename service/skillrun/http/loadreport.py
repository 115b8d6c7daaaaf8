"""What ``build_services`` loaded at start, and from where: the readiness counts and
the one-line start-up summary (a user whose skill files were all skipped sees it in
the first screen of output, not only in the warnings above it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..engine import Skill
from ..engine.loader import Problem


@dataclass(frozen=True, slots=True)
class LoadReport:
    """Skills loaded per directory (in the order searched) and the files skipped."""

    loaded: tuple[tuple[Path, int], ...]
    skipped_paths: tuple[str, ...]

    @classmethod
    def of(cls, directories: Sequence[Path], skills: Iterable[Skill], problems: Iterable[Problem]) -> "LoadReport":
        counts = {directory: 0 for directory in directories}
        for skill in skills:
            home = _directory_of(Path(skill.source), directories)
            if home is not None:
                counts[home] += 1
        # One file can have many problems; the count is of files (or directories) skipped.
        skipped = tuple(sorted({p.path for p in problems}))
        return cls(tuple(counts.items()), skipped)

    @property
    def skills_loaded(self) -> int:
        return sum(n for _, n in self.loaded)

    @property
    def skills_skipped(self) -> int:
        return len(self.skipped_paths)

    def summary(self) -> str:
        where = ", ".join(f"{n} from {directory}" for directory, n in self.loaded) or "no skill directories"
        line = f"loaded {self.skills_loaded} skill(s): {where}"
        if self.skipped_paths:
            line += f"; skipped {self.skills_skipped} (see the warnings above): {', '.join(self.skipped_paths)}"
        return line


def _directory_of(source: Path, directories: Sequence[Path]) -> Path | None:
    # A later directory's skill replaces an earlier one's with the same id, so the
    # catalog's skill knows its own file: credit the directory that holds it.
    for directory in reversed(directories):
        try:
            source.resolve().relative_to(directory.resolve())
        except ValueError:
            continue
        return directory
    return None

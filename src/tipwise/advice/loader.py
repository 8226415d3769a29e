"""Read and validate the advice library file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from tipwise.advice.domain import Category, Condition, Effort, TimeOfDay, Tip
from tipwise.kernel.errors import ConfigurationError

DEFAULT_LIBRARY = Path(__file__).parent / "data" / "library.toml"
SUPPORTED_SCHEMA = 1


class _TipEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=60)]
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=80)]
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=20, max_length=400)]
    category: Category
    effort: Effort
    minutes: Annotated[int, Field(ge=1, le=240)]
    times_of_day: Annotated[list[TimeOfDay], Field(min_length=1)]
    condition: Condition | None = None


@dataclass(frozen=True, kw_only=True)
class Library:
    """A validated advice library."""

    version: str
    tips: tuple[Tip, ...]


class AdviceLibraryError(ConfigurationError):
    code = "advice_library_invalid"


def load_library(path: Path = DEFAULT_LIBRARY) -> Library:
    """Parse and validate the library at `path`; errors name the file and the bad entry."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AdviceLibraryError(f"advice library {path}: file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise AdviceLibraryError(f"advice library {path}: not valid TOML: {exc}") from exc
    return parse_library(document, source=str(path))


def parse_library(document: dict[str, Any], *, source: str) -> Library:
    """Validate an already parsed library document."""
    if document.get("schema_version") != SUPPORTED_SCHEMA:
        raise AdviceLibraryError(
            f"advice library {source}: schema_version must be {SUPPORTED_SCHEMA}, "
            f"got {document.get('schema_version')!r}"
        )
    version = document.get("library_version")
    if not isinstance(version, str) or not version:
        raise AdviceLibraryError(f"advice library {source}: library_version must be a non-empty string")
    entries = document.get("tip")
    if not isinstance(entries, list) or not entries:
        raise AdviceLibraryError(f"advice library {source}: no [[tip]] entries")

    tips: list[Tip] = []
    seen_ids: set[str] = set()
    for number, raw in enumerate(entries, start=1):
        label = f"tip #{number}" + (f" (id {raw.get('id')!r})" if isinstance(raw, dict) and "id" in raw else "")
        try:
            entry = _TipEntry.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'entry'}: {err['msg']}" for err in exc.errors()
            )
            raise AdviceLibraryError(f"advice library {source}: {label}: {problems}") from exc
        if entry.id in seen_ids:
            raise AdviceLibraryError(f"advice library {source}: {label}: duplicate id")
        seen_ids.add(entry.id)
        tips.append(
            Tip(
                id=entry.id,
                title=entry.title,
                body=entry.body,
                category=entry.category,
                effort=entry.effort,
                minutes=entry.minutes,
                times_of_day=frozenset(entry.times_of_day),
                condition=entry.condition,
            )
        )
    return Library(version=version, tips=tuple(tips))

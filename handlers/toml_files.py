"""Reading the TOML data files (the questionnaire, the festival calendar) with one clear line when they are wrong."""

from __future__ import annotations

import tomllib
from pathlib import Path


def read_toml(path: Path, *, what: str, error: type[Exception]) -> dict:
    """The file's TOML; a missing or broken file raises ``error`` naming the file, for the operator."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} file {path} is not valid TOML: {exc}") from None

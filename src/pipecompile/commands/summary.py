"""The one-line summaries commands share with the entry point's fast path (which
prints them without loading click or the command table)."""

from __future__ import annotations


def check_summary(path: object) -> str:
    """check's one-line summary when nothing is out of date (also the CLI's)."""
    return f"check: {path}: the generated files are up to date"

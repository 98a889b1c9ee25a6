"""The one-line summaries commands share with the entry point's fast path (which
prints them without loading click or the command table)."""

from __future__ import annotations


def check_summary(path: object) -> str:
    """check's one-line summary when nothing is out of date (also the CLI's)."""
    return f"check: {path}: the generated files are up to date"


def in_ci() -> bool:
    """Whether this runs in CI (the CI variable set to a true value, as GitHub Actions,
    CodeBuild and most CI services set it): check then never trusts the manifest."""
    import os

    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")

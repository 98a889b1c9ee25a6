"""pipecompile: compile one pipeline.yaml into every CI/CD file a service needs.

The Python API is :func:`compile` (see :mod:`pipecompile.api`); the command
line is ``pipecompile`` (:mod:`pipecompile.commands`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = ["Compilation", "__version__", "compile"]

if TYPE_CHECKING:
    from .api import Compilation, compile


def __getattr__(name: str) -> Any:
    # loaded on first use: the command line (a pre-commit hook) never pays for it
    if name in ("compile", "Compilation"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'pipecompile' has no attribute {name!r}")

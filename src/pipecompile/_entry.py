"""The console entry point. The commonest run, a ``check`` that finds nothing to do
(pre-commit, CI), is answered here without loading the command line (click and the
command table cost about half of that run); anything else goes to :mod:`.cli`."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _fast_check(args: list[str]) -> int | None:
    """``check [-q] [-f FILE]`` when the generated files are known to be up to date;
    None hands the run to the full command line (which says why, or reports errors)."""
    from .commands.summary import in_ci

    if in_ci():
        return None  # CI's drift check renders and compares (a manifest can be forged)
    quiet, file = False, None
    rest = iter(args)
    for arg in rest:
        if arg in ("-q", "--quiet"):
            quiet = True
        elif arg in ("-f", "--file"):
            file = next(rest, None)
            if file is None:
                return None
        elif arg.startswith("--file="):
            file = arg.split("=", 1)[1]
        else:
            return None  # --diff, --format, --help, ...: the full command line
    try:
        from .frontend.discovery import find_pipeline
        from .session import Session

        path = Path(file) if file is not None else find_pipeline(Path.cwd())
        if not Session.open(path).fast_clean():
            return None
    except Exception:
        return None
    if not quiet:
        from .commands.summary import check_summary

        summary = check_summary(path)
        # as click.style(fg="green") on a terminal, unless NO_COLOR
        if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
            summary = f"\x1b[32m{summary}\x1b[0m"
        print(summary)
    return 0


def run() -> None:
    args = sys.argv[1:]
    if args[:1] == ["check"]:
        code = _fast_check(args[1:])
        if code is not None:
            sys.stdout.flush()
            os._exit(code)
    from .commands.cli import run as cli

    cli()

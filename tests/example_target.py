"""An example third-party target: what a package adds to pipecompile.

A package ships a module like this one and names it in its pyproject.toml::

    [project.entry-points."pipecompile.targets"]
    example = "my_package.example_target"

and a pipeline turns it on under ``outputs.plugins`` (installed targets are never
on by default)::

    outputs:
      plugins:
        example: deploy/example

It is a pure function of the IR, like every built-in target (the Protocol
``pipecompile.targets.Target``); ``delivery`` and ``choices`` are optional.
"""

from __future__ import annotations

from pipecompile.ir import IR
from pipecompile.targets import Finding, Rendered

name = "example"  # the entry point's name, and the key under outputs.plugins
default_folder = "deploy/example"
cost = 1  # ms to render per 1000 services


def render(ir: IR) -> Rendered:
    """One file listing the services and the environments each deploys to."""
    envs = ", ".join(e.name for e in ir.environments)
    return {"services.txt": "".join(f"{s.name}: {envs}\n" for s in ir.services)}


def check(ir: IR) -> list[Finding]:
    """What this target cannot express: a service named 'all' (it lists them)."""
    return [
        Finding(
            ("services", s.name), "the example output cannot list a service named 'all'", key=True
        )
        for s in ir.services
        if s.name == "all"
    ]


def describe(ir: IR) -> list[str]:
    return ["example: nothing outside the repository"]

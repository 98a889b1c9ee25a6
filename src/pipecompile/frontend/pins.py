"""Pinned versions: the package's defaults, overridden by the user's pipecompile.lock.

The lock is a small JSON file next to pipeline.yaml, meant to be edited by
Renovate/Dependabot-style bots (or by hand); the next build carries its pins
into every generated file, and ``check`` compares against the lock's pins, so
it never reverts an update made there::

    {
      "actions": {
        "actions/checkout": {"version": "v7.0.1",
                             "sha": "3d3c42e5aac5ba805825da76410c181273ba90b1"}
      },
      "terraform_aws_provider": ">= 5.70.0, < 7.0.0",
      "zap_image": "ghcr.io/zaproxy/zaproxy:2.17.0@sha256:781a2bda...",
      "cosign_version": "v3.0.6",
      "cosign_sha256": "c956e5df..."
    }
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Diagnostic, PipelineError, did_you_mean

if TYPE_CHECKING:  # reading the lock (check's fast path) must not load the IR
    from ..ir import Pins

LOCK_NAME = "pipecompile.lock"
DEFAULTS = {
    "terraform_aws_provider": ">= 5.70.0, < 7.0.0",
    # ZAP 2.17.0 (the stable release), pinned by the digest of its multi-arch image index:
    # the scan runs next to a deploy's credentials, so a moved tag must not change it
    "zap_image": "ghcr.io/zaproxy/zaproxy:2.17.0@sha256:"
    "781a2bdaea47324e7bab583e2263f21d257b0aee61ed51521a5be45f5f5081ef",
    # The cosign that the pinned sigstore/cosign-installer (v4.1.2, 6f9f177) bootstraps,
    # and that binary's sha256, copied from that commit's action.yml
    # (bootstrap_version, bootstrap_linux_amd64_sha). Both orchestrators run it: GitHub
    # through the installer (cosign-release), CodeBuild by download + sha256sum -c.
    "cosign_version": "v3.0.6",
    "cosign_sha256": "c956e5dfcac53d52bcf058360d579472f0c1d2d9b69f55209e256fe7783f4c74",
    # The scanners CodeBuild runs as containers (GitHub runs the same dependency check),
    # each by digest where one could be established (IMAGE_SOURCES says from where).
    "sonar_scanner_image": "sonarsource/sonar-scanner-cli:12.2.0.4256_8.1.0@sha256:"
    "a3f4215076706c95a17a68c19322ee916e40a3acd081a8c1a1e839e0194afa57",
    "dependency_check_image": "owasp/dependency-check:12.1.0",
    # The SBOM generator both orchestrators run as a container (anchore/syft, v1.51.0
    # is the newest release tag in the stored snapshot of the repository)
    "syft_image": "anchore/syft:v1.51.0@sha256:"
    "678bfa565b60f747aac0f8e964fe5588a24445b8d0a480e91f6efd70020dfbb0",
}
# Where each default image pin's digest comes from.  None of them was pulled here (no
# registry access while building pipecompile): each digest is the one several unrelated
# public repositories pin for that tag, found through a code search, and they agree.  An
# image without a digest anyone could confirm stays pinned by its tag and is listed in
# UNVERIFIED: ``explain`` and ``pins`` say so.
IMAGE_SOURCES: dict[str, str] = {
    "zap_image": "ZAP 2.17.0: the digest of its multi-arch image index on ghcr.io, pinned "
    "with the ZAP scan (not re-checked since)",
    "sonar_scanner_image": "tag 12.2.0.4256_8.1.0 (SonarScanner CLI 8.1.0.6389, alias 12.2): "
    "the same digest in three unrelated public repositories (a Dockerfile 'FROM "
    "sonarsource/sonar-scanner-cli:12.2@sha256:a3f42150...', a tool table naming tag "
    "12.2.0.4256_8.1.0 with it, a script pinning 'SonarScanner CLI 8.1.0.6389, by digest')",
    "syft_image": "tag v1.51.0: the same digest in at least six unrelated public "
    "repositories (Dockerfiles 'FROM ghcr.io/anchore/syft:v1.51.0@sha256:678bfa56...', "
    "tool pin files, an SBOM report naming the generator)",
}
UNVERIFIED: dict[str, str] = {
    "dependency_check_image": "no digest of owasp/dependency-check:12.1.0 could be "
    "confirmed offline: it is pulled by its tag, which its publisher can move; pin it by "
    'digest in pipecompile.lock ("dependency_check_image": "owasp/dependency-check:'
    '12.1.0@sha256:<digest>", from docker buildx imagetools inspect)',
}
_SHA = re.compile(r"[0-9a-f]{40}")
_VERSION = re.compile(r"v[0-9]+\.[0-9]+\.[0-9]+")  # vMAJOR.MINOR.PATCH
_BARE_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")  # actions whose tags have no 'v'
_SHA256 = re.compile(r"[0-9a-f]{64}")
# an image by digest: docker pulls the digest, the tag only names it for a reader
_BY_DIGEST = re.compile(r"[a-z0-9][a-z0-9./_-]*(:[A-Za-z0-9._-]+)?@sha256:[0-9a-f]{64}")
# the keys whose values have a shape of their own (the others: short plain strings)
_SHAPES = {
    "cosign_version": (_VERSION, "must be a release tag vMAJOR.MINOR.PATCH, such as 'v3.0.6'"),
    "cosign_sha256": (_SHA256, "must be the binary's sha256: 64 lowercase hex digits"),
    "zap_image": (
        _BY_DIGEST,
        "must name the image by digest: <image>[:<tag>]@sha256:<64 hex digits>",
    ),
}
_TEXT = re.compile(r"[^\x00-\x1f\x7f\"'\\\\$`]{1,200}")

# an image reference as docker parses it: github.com/distribution/reference v0.6.0,
# regexp.go (referencePat; Go's \w is ASCII) and reference.go (a name of at most 255
# characters); the digest as github.com/opencontainers/go-digest validates it (sha256:
# 64 lowercase hex digits, sha512: 128)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_IMAGE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}))?"
)


def by_tag_only(pins: Pins) -> list[str]:
    """One line per image pin without a digest: what docker pulls can change under it."""
    out = []
    for key, source in pins.sources:
        value = str(getattr(pins, key))
        if key.endswith("_image") and "@" not in value:
            why = UNVERIFIED.get(key, "") if source == "default" else ""
            out.append(
                f"{key} {value} ({source}) is pinned by its tag only"
                + (f": {why}" if why else ": add its digest in the lock")
            )
    return out


def image_problem(value: str) -> str | None:
    """Why ``value`` is not an image pin docker pulls as written, or None."""
    m = _IMAGE.fullmatch(value)
    if m is None:
        return (
            "is not an image reference: [registry/]name[:tag][@sha256:<64 hex digits>], "
            "the name in lowercase (as docker parses it)"
        )
    if len(m.group("name")) > 255:
        return "is not an image reference: its name is longer than 255 characters"
    if m.group("digest") is None and m.group("tag") in (None, "latest"):
        return (
            "is not a pin: without a tag, or with 'latest', docker pulls whatever the tag "
            "names today; name a version tag (or a digest)"
        )
    return None


MAX_LOCK_BYTES = 1024 * 1024


def read_lock(root: Path) -> bytes | None:
    """The lock's bytes (at most :data:`MAX_LOCK_BYTES`), None when there is none."""
    from ..output.untrusted import read_bounded

    try:
        return read_bounded(str(root / LOCK_NAME), MAX_LOCK_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except IsADirectoryError:
        folder = Diagnostic(LOCK_NAME, 1, 1, (), "is a folder, not a file", code="PC101")
        raise PipelineError([folder]) from None
    except ValueError as exc:  # too large, or not a regular file
        raise PipelineError([Diagnostic(LOCK_NAME, 1, 1, (), str(exc), code="PC101")]) from None
    except OSError as exc:
        raise PipelineError(
            [Diagnostic(LOCK_NAME, 1, 1, (), f"cannot read: {exc.strerror}", code="PC101")]
        ) from None


def resolve(
    lock: bytes | None, actions: dict[str, dict[str, str]], display: str = LOCK_NAME
) -> Pins:
    """Defaults (``actions``: the pins the targets ship) overlaid with the lock's bytes
    ``lock`` (None: there is no lock)."""
    from ..ir import ActionPin, Pins

    actions = {name: dict(pin) for name, pin in actions.items()}
    values = dict(DEFAULTS)
    table: dict[str, Any] = _read(display, lock) if lock is not None else {}
    errors: list[Diagnostic] = []

    def err(path: tuple[str | int, ...], msg: str) -> None:
        errors.append(Diagnostic(display, *_position(lock or b"", path), path, msg, code="PC108"))

    known = {"actions", *DEFAULTS}
    for key in table:
        if key not in known:
            err((key,), f"unknown key '{key}'{did_you_mean(key, known)}")
    from_lock: set[str] = set()
    lock_actions = table.get("actions", {})
    if not isinstance(lock_actions, dict):
        err(("actions",), 'expected an object: {"owner/name": {"version": ..., "sha": ...}}')
        lock_actions = {}
    for name, pin in lock_actions.items():
        if name not in actions:
            err(
                ("actions", name),
                f"pipecompile does not use the action '{name}'{did_you_mean(name, actions)}",
            )
            continue
        if not isinstance(pin, dict) or set(pin) != {"sha", "version"}:
            err(("actions", name), 'expected {"version": "vX.Y.Z", "sha": "<40 hex>"}')
            continue
        if not isinstance(pin["sha"], str) or not _SHA.fullmatch(pin["sha"]):
            err(("actions", name, "sha"), "must be a full 40-character commit SHA")
            continue
        bare = not actions[name]["version"].startswith("v")
        shape = _BARE_VERSION if bare else _VERSION
        if not isinstance(pin["version"], str) or not shape.fullmatch(pin["version"]):
            example = actions[name]["version"]
            err(
                ("actions", name, "version"),
                f"must be a release tag {'' if bare else 'v'}MAJOR.MINOR.PATCH such as '{example}'",
            )
            continue
        actions[name] = {"sha": pin["sha"], "version": pin["version"]}
        from_lock.add(name)
    for key in DEFAULTS:
        if key in table:
            if not isinstance(table[key], str) or not _TEXT.fullmatch(table[key]):
                err((key,), "must be a short string without quotes, '$' or backslashes")
                continue
            if key in _SHAPES and not _SHAPES[key][0].fullmatch(table[key]):
                err((key,), f"{table[key]!r} {_SHAPES[key][1]}")
                continue
            problem = image_problem(table[key]) if key.endswith("_image") else None
            if problem is not None:
                err((key,), f"{table[key]!r} {problem}")
                continue
            values[key] = table[key]
            from_lock.add(key)
    if errors:
        raise PipelineError(errors)
    pins = tuple(
        ActionPin(name, v["sha"], v["version"], LOCK_NAME if name in from_lock else "default")
        for name, v in sorted(actions.items())
    )
    sources = {k: (LOCK_NAME if k in from_lock else "default") for k in DEFAULTS}
    return Pins(
        actions=pins,
        terraform_aws_provider=values["terraform_aws_provider"],
        zap_image=values["zap_image"],
        cosign_version=values["cosign_version"],
        cosign_sha256=values["cosign_sha256"],
        sonar_scanner_image=values["sonar_scanner_image"],
        dependency_check_image=values["dependency_check_image"],
        syft_image=values["syft_image"],
        sources=tuple(sorted(sources.items())),
    )


def _position(raw: bytes, path: tuple[str | int, ...]) -> tuple[int, int]:
    """Line and column of the breadcrumb ``path`` in the lock's JSON text (1, 1 when it
    cannot be found): each key searched for after the previous one."""
    from ..output.untrusted import locate

    line = locate(raw, *path)
    if not line:
        return 1, 1
    text = raw.split(b"\n")[line - 1]
    last = next((k for k in reversed(path) if isinstance(k, str)), "")
    return line, max(text.find(json.dumps(last).encode()), 0) + 1


def _read(display: str, raw: bytes) -> dict[str, Any]:
    from ..output.untrusted import JSONProblem, load_json

    try:
        data = load_json(raw, max_depth=4)
    except JSONProblem as exc:
        raise PipelineError(
            [Diagnostic(display, max(exc.line, 1), max(exc.col, 1), (), exc.message, code="PC108")]
        ) from None
    if not isinstance(data, dict):
        raise PipelineError([Diagnostic(display, 1, 1, (), "expected a JSON object", code="PC108")])
    return data

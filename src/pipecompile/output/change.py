"""What a plan does with each path (:mod:`.sync` plans, :mod:`.apply` carries out)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .state import Manifest


class Kind(StrEnum):
    """What a plan does with one path."""

    CREATE = "create"  # missing: write it
    UPDATE = "update"  # differs: rewrite it
    DELETE = "delete"  # generated earlier, no longer: remove it
    DEBRIS = "debris"  # left by an interrupted build: remove it
    CONFLICT = "conflict"  # should be generated, but is not ours to replace: left alone
    KEPT = "kept"  # no longer generated, but edited by hand: left alone
    UNTRUSTED = "untrusted"  # a manifest claim the tree does not back: dropped, nothing touched


WRITES = (Kind.CREATE, Kind.UPDATE)
REMOVALS = (Kind.DELETE, Kind.DEBRIS)
UNRESOLVED = (Kind.CONFLICT, Kind.KEPT)


@dataclass(frozen=True, slots=True)
class Change:
    path: str  # relative to the root, '/'-separated
    kind: Kind
    reason: str
    old: str | None
    new: str | None


@dataclass
class Plan:
    """The changes that bring the tree in line, and the manifest to record after them."""

    changes: list[Change]
    manifest: Manifest
    folders: list[str]  # the output folders the plan may change, for pruning
    recorded: str | None = None  # the manifest's text on disk when planned
    journal: bool = False  # an interrupted build's journal was found
    before: Manifest | None = None  # the manifest on disk, parsed

    @property
    def unresolved(self) -> list[Change]:
        return [c for c in self.changes if c.kind in UNRESOLVED]

    def records_another(self) -> bool:
        """Whether a build would record another manifest than the one on disk, beyond
        forgetting kept files that are gone and the installed dependencies.

        Deleting a kept file resolves it, so check is green then (the next build
        drops the entry).  Another version of ruamel.yaml or of a plugin on this
        machine keeps check's fast path from vouching, but when every file is what
        the pipeline generates, the tree is right: check is green, not red for a
        line of the manifest that says where it was built.
        """
        m = self.manifest
        if self.recorded == m.text():
            return False
        before = self.before
        if before is None or not m.kept.keys() <= before.kept.keys():
            return True
        inputs = dict(m.inputs)
        if "environment" in inputs:
            if "environment" in before.inputs:
                inputs["environment"] = before.inputs["environment"]
            else:
                del inputs["environment"]
        same = Manifest(
            inputs, m.version, m.files, m.outputs, m.others, before.kept, sources=m.sources
        )
        return self.recorded != same.text()


def decode(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")

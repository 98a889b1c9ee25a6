"""What a build's removals leave to do outside the repository.

Removing a service (or an environment) deletes its generated files, but two
things live on elsewhere: the AWS resources the last ``terraform apply``
created, which the next apply destroys, and the Argo CD Applications, which
were applied to the cluster (``explain``: "apply kubernetes/argocd/") and stay
there until someone deletes them.  Read from the texts the build replaced, so
it says exactly what went, whatever removed it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# (path, text before the build, text after it; None when there is no file)
Replaced = tuple[str, str | None, str | None]

_RESOURCE = r'^resource "([A-Za-z0-9_-]+)" "([A-Za-z0-9_-]+)"'
_APPLICATION = r"^kind: Application\n(?:.*\n)*?metadata:\n(?:  .*\n)*?  name: (\S+)\n"
# what the AWS provider does with what they hold (terraform-provider-aws: an ECR
# repository without force_delete and a bucket without force_destroy are refused while
# not empty; the audit table has deletion_protection_enabled, so apply fails on it)
_KEEPS_DATA = {
    "aws_ecr_repository": "refused while it holds images: delete them first",
    "aws_s3_bucket": "refused while it holds objects",
    "aws_dynamodb_table": "refused while deletion protection is on",
    "aws_cloudwatch_log_group": "with its logs",
    "aws_secretsmanager_secret": "its value recoverable for the recovery window",
}


def _resources(text: str | None) -> set[tuple[str, str]]:
    return set(re.findall(_RESOURCE, text or "", re.MULTILINE))


def consequences(replaced: Iterable[Replaced]) -> list[str]:
    """Notes for the person who ran build: resources the next apply destroys, and
    Applications that stay in the cluster; [] when nothing went."""
    destroyed: list[tuple[str, str]] = []
    applications: list[str] = []
    for path, old, new in replaced:
        if path.endswith(".tf"):
            destroyed += sorted(_resources(old) - _resources(new))
        elif path.endswith((".yaml", ".yml")) and old is not None and new is None:
            applications += re.findall(_APPLICATION, old, re.MULTILINE)
    notes = []
    if destroyed:
        shown = [
            f"{kind}.{name}" + (f" ({_KEEPS_DATA[kind]})" if kind in _KEEPS_DATA else "")
            for kind, name in destroyed
        ]
        notes.append(
            f"note: the next terraform apply destroys {len(destroyed)} resource"
            f"{'' if len(destroyed) == 1 else 's'}: {', '.join(shown)}; "
            "review terraform plan first"
        )
    if applications:
        names = " ".join(sorted(applications))
        notes.append(
            f"note: Argo CD keeps the Application{'' if len(applications) == 1 else 's'} "
            f"{', '.join(sorted(applications))} in the cluster (they were applied, not "
            f"synced from this repository); delete them with: kubectl -n argocd delete "
            f"application {names} (their resources finalizer then removes what they deployed)"
        )
    return notes

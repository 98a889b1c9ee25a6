"""The README's records for the specification (issue 29, items 8 and 10): what `terraform
destroy` keeps and why, the departures from the specification's named tools, and the
table of where each asked-for part is generated; each claim held to the generated files."""

from __future__ import annotations

import re
from pathlib import Path

from tests.rehearsal.test_spec import GHA, REF, SAMPLES, TF
from tests.targets.test_compliance import tf_blocks

README = (Path(__file__).parents[1] / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


def every_block(folder: Path) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for tf in folder.glob("*.tf"):
        out.update(tf_blocks(tf))
    return out


def test_the_destroy_section_names_what_the_reference_keeps_and_it_is_so() -> None:
    text = section("Destroying a project")
    named = set(re.findall(r"`(aws_[a-z0-9_]+\.[a-z0-9_*-]+)`", text))
    blocks = every_block(TF)
    for address in named:
        if address.endswith(".*"):
            kind = address.removesuffix(".*")
            assert any(a.startswith(kind + ".") for a in blocks), address
        elif address != "aws_s3_bucket.trail":
            assert address in blocks, address
    assert "aws_s3_bucket.trail" in every_block(
        SAMPLES / "shared-account/infrastructure/terraform/cicd"
    )
    # each reason holds in the generated Terraform
    assert blocks["aws_dynamodb_table.deployments"]["deletion_protection_enabled"] is True
    for address, body in blocks.items():
        if address.startswith(("aws_s3_bucket.", "aws_ecr_repository.")):
            assert not body.get("force_destroy") and not body.get("force_delete"), address
        if address.startswith("aws_secretsmanager_secret."):
            assert body.get("recovery_window_in_days", 30) == 30, address  # the default
        if address.startswith("aws_kms_key."):
            assert body["deletion_window_in_days"] == 30, address
    assert "terraform state rm aws_dynamodb_table.deployments" in text


def test_the_departures_from_the_named_tools_are_recorded_and_true() -> None:
    text = section("Departures from the specification's named tools")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    asked = [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]]
    assert asked == [
        "AWS Signer for image signing",
        "CodeDeploy blue/green, App Mesh traffic shifting",
        "AWS CDK for infrastructure",
    ]
    for row in rows[1:]:
        assert len([c for c in row.strip("|").split(" | ") if c.strip()]) == 3, row  # a why
    # what the rows say is generated, is
    kms = (TF / "kms.tf").read_text()
    assert 'customer_master_key_spec = "ECC_NIST_P256"' in kms
    admission = (REF / "kubernetes/argocd/admission-production.yaml").read_text()
    assert "kind: ImageValidatingPolicy" in admission
    assert "kind: Rollout" in (REF / "kubernetes/apps/_chart/templates/workload.yaml").read_text()
    for sample in (REF, GHA):
        for tf in sample.rglob("*.tf"):
            body = tf.read_text()
            assert "aws_codedeploy" not in body and "aws_appmesh" not in body, tf
            assert "aws_signer" not in body, tf
    assert not list(REF.rglob("cdk.json"))


def test_the_specification_table_has_no_row_of_these_items_left_by_hand() -> None:
    text = section("What the specification asks, where it is generated")
    rows = {
        line.split(" | ")[0].removeprefix("| "): line
        for line in text.splitlines()
        if line.startswith("| ") and "---" not in line
    }
    for asked, generated in (
        ("7.2 direct developer alerts", ["alerts.tf"]),
        ("9.2 Terraform drift detection, monthly security review",
         ["reviews.tf", "drift.yml", "security-review.yml"]),
        ("10.1 / 10.2 per-environment tfvars, phased rollout", ["phases.tf"]),
        ("7.1 CloudWatch pipeline metrics, success/failure rates, durations", ["monitoring.tf"]),
    ):  # fmt: skip
        row = rows[asked]
        assert "not generated" not in row and "by hand" not in row, row
        for name in generated:
            assert f"`{name}`" in row, (asked, name)
            assert list(REF.rglob(name)) or list(GHA.rglob(name)), name


def test_no_row_of_the_specification_table_is_left_by_hand_and_each_has_its_section() -> None:
    text = section("What the specification asks, where it is generated")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    for row in rows[1:]:
        assert "by hand" not in row and "not generated" not in row, row
    asked = [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]]
    assert (
        "7.3 deployment tracking, links to commits and issues, rollback history with reasons"
        in asked
    )
    assert "3.4 Helm chart versioning and release management" in asked
    assert any(a.startswith("3.3 S3 cache") for a in asked)
    for title in (
        "Deployment tracking and rollback history",
        "Chart versions",
        "Dependency caches",
    ):
        assert section(title).strip(), title
    assert "1.0.0+" in (REF / "kubernetes/apps/_chart/Chart.yaml").read_text()

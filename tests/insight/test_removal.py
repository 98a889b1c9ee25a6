"""Removing a service says what is left to do outside the repository."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pipecompile.commands import cli
from pipecompile.insight.removal import consequences
from tests.conftest import ROOT

TF_OLD = 'resource "aws_ecr_repository" "web" {\n}\nresource "aws_iam_role" "ci" {\n}\n'
TF_NEW = 'resource "aws_iam_role" "ci" {\n}\n'
APP = (
    "# header\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n"
    "  name: web-production\n  namespace: argocd\nspec: {}\n"
)


def test_the_notes_name_what_goes() -> None:
    notes = consequences(
        [("cicd/ecr.tf", TF_OLD, TF_NEW), ("argocd/web-production.yaml", APP, None)]
    )
    assert notes[0].startswith(
        "note: the next terraform apply destroys 1 resource: aws_ecr_repository.web "
        "(refused while it holds images: delete them first)"
    )
    assert "kubectl -n argocd delete application web-production" in notes[1]
    assert consequences([("cicd/ecr.tf", TF_NEW, TF_OLD)]) == []  # added, not removed


def test_removing_a_service_says_what_apply_destroys_and_what_stays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".git").mkdir()  # the headers name samples/ecommerce/pipeline.yaml
    root = tmp_path / "samples/ecommerce"
    shutil.copytree(ROOT / "samples/ecommerce", root)
    pipeline = root / "pipeline.yaml"
    text = pipeline.read_text()
    start = text.index("  order-service:\n")
    end = re.compile(r"^(?:  )?\S", re.MULTILINE).search(text, start + 3)
    assert end is not None
    pipeline.write_text(text[:start] + text[end.start() :])
    assert "order-service" not in pipeline.read_text() and "notifications:" in pipeline.read_text()
    assert cli.main(["build", "-q", "-f", str(pipeline)]) == 0
    err = capsys.readouterr().err
    assert "aws_ecr_repository.order-service (refused while it holds images" in err
    assert "aws_codepipeline.order-service-production" in err
    assert "aws_ecr_repository.product-service" not in err
    assert "delete application order-service-development order-service-production" in err

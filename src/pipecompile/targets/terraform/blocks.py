"""HCL building blocks the Terraform files share: resources, policy documents, roles."""

from __future__ import annotations

from typing import Any

from ...ir import IR, Deployment
from ...serialize.hcl import Block, Ref
from .. import data


def aws_constants() -> dict[str, Any]:
    table: dict[str, Any] = data("terraform", "aws.json")
    return table


def resource(type_: str, label: str) -> Block:
    return Block("resource", (type_, label))


KEY_POLICY_SKIPS = [
    f'checkov:skip={check}: a KMS key policy\'s Resource "*" is the key itself'
    for check in ("CKV_AWS_109", "CKV_AWS_111", "CKV_AWS_356")
]


def policy_doc(
    label: str, statements: list[dict[str, Any]], comments: list[str] | None = None
) -> Block:
    doc = Block("data", ("aws_iam_policy_document", label))
    for c in comments or ():
        doc.comment(c)
    for st in statements:
        s = doc.block("statement")
        if "sid" in st:
            s.attr("sid", st["sid"])
        s.attr("effect", st.get("effect", "Allow"))
        s.attr("actions", st["actions"])
        if "resources" in st:
            s.attr("resources", st["resources"])
        if "not_resources" in st:
            s.attr("not_resources", st["not_resources"])
        for kind, ids in st.get("principals", []):
            p = s.block("principals")
            p.attr("type", kind)
            p.attr("identifiers", ids)
        for test, variable, values in st.get("conditions", []):
            cond = s.block("condition")
            cond.attr("test", test)
            cond.attr("variable", variable)
            cond.attr("values", values)
    return doc


def service_role(label: str, name: str, service: str, account: str) -> list[Block]:
    """An IAM role that only ``service``, acting for this account, may assume."""
    trust = policy_doc(
        f"{label}_assume",
        [
            {
                "actions": ["sts:AssumeRole"],
                "principals": [("Service", [service])],
                "conditions": [("StringEquals", "aws:SourceAccount", [account])],
            }
        ],
    )
    return [trust, iam_role(label, name, f"{label}_assume")]


def iam_role(label: str, role_name: str, assume_doc: str) -> Block:
    r = resource("aws_iam_role", label)
    r.attr("name", role_name)
    r.attr("assume_role_policy", Ref(f"data.aws_iam_policy_document.{assume_doc}.json"))
    return r


def inline_policy(label: str, role: str, doc: str) -> Block:
    p = resource("aws_iam_role_policy", label)
    p.attr("name", label)
    p.attr("role", Ref(f"aws_iam_role.{role}.id"))
    p.attr("policy", Ref(f"data.aws_iam_policy_document.{doc}.json"))
    return p


def pipeline_label(ir: IR, dep: Deployment) -> str:
    """Terraform label of a deployment's pipeline: its name without the project prefix."""
    return dep.pipeline_name.removeprefix(f"{ir.project}-")

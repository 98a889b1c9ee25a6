"""external_secrets.tf: one IAM role per environment for its SecretStores.

Each service's SecretStore (External Secrets, AWS provider, ``role``) in an environment's
namespace assumes that environment's role, and the role may read only the keys under the
environment's ``secret_prefix``: a store in development cannot read production's keys.
The External Secrets controller's own role (its IRSA role) is the only principal the
roles trust; its ARN is the variable ``external_secrets_controller_role_arn``.
"""

from __future__ import annotations

from ...ir import IR, Environment
from ...serialize.hcl import Block, Ref
from .blocks import iam_role, inline_policy, policy_doc
from .iam import NEVER_APPROVE

CONTROLLER_VARIABLE = "external_secrets_controller_role_arn"


def environments(ir: IR) -> list[Environment]:
    """The environments whose services read secrets through their own SecretStores."""
    if not any(svc.secrets for svc in ir.services):
        return []
    return [env for env in ir.environments if env.secret_store.kind == "SecretStore"]


def _label(env: Environment) -> str:
    return "secrets_" + env.name.replace("-", "_")


def external_secrets(ir: IR) -> list[Block] | None:
    envs = environments(ir)
    if not envs:
        return None
    var = Block("variable", (CONTROLLER_VARIABLE,))
    var.attr(
        "description",
        "IAM role the External Secrets controller runs as (its IRSA role): the only "
        "principal the environments' secrets roles trust",
    )
    var.attr("type", Ref("string"))
    var.attr("default", f"arn:aws:iam::{ir.aws.account_id}:role/external-secrets")
    blocks: list[Block] = [var]
    region, account = ir.aws.region, ir.aws.account_id
    for env in envs:
        label = _label(env)
        blocks.append(
            policy_doc(
                f"{label}_assume",
                [
                    {
                        "actions": ["sts:AssumeRole"],
                        "principals": [("AWS", [Ref(f"var.{CONTROLLER_VARIABLE}")])],
                    }
                ],
            )
        )
        blocks.append(iam_role(label, env.secrets_role_name, f"{label}_assume"))
        blocks.append(
            policy_doc(
                label,
                [
                    {
                        "sid": "EnvironmentSecrets",  # only this environment's keys
                        "actions": [
                            "secretsmanager:DescribeSecret",
                            "secretsmanager:GetSecretValue",
                        ],
                        "resources": [
                            f"arn:aws:secretsmanager:{region}:{account}:secret:{env.secret_prefix}*"
                        ],
                    },
                    NEVER_APPROVE,  # a machine role: it never approves a deployment
                ],
            )
        )
        blocks.append(inline_policy(label, label, label))
    return blocks

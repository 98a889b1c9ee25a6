"""external_secrets.tf: one IAM role per environment for its SecretStores.

Each service's SecretStore (External Secrets, AWS provider, ``auth.jwt
.serviceAccountRef``) in an environment's namespace authenticates as its own
ServiceAccount ``<service>-secrets``: the controller requests a token of that
ServiceAccount and assumes the role named by its ``eks.amazonaws.com/role-arn``
annotation with it (external-secrets v2.9.0 providers/v1/aws/auth/auth.go
credsFromServiceAccount, AssumeRoleWithWebIdentity). The environment's role trusts only
those ServiceAccounts of the environment's namespace, through the cluster's IAM OIDC
provider (``irsa``), and may read only the keys under the environment's
``secret_prefix``: a store in development cannot read production's keys, and a store
in another namespace cannot assume production's role.
"""

from __future__ import annotations

from ...ir import IR, Environment
from ...serialize.hcl import Block, Template
from .blocks import iam_role, inline_policy, policy_doc
from .iam import NEVER_APPROVE
from .irsa import trust


def environments(ir: IR) -> list[Environment]:
    """The environments whose services read secrets through their own SecretStores."""
    if not any(svc.secrets for svc in ir.services):
        return []
    return [env for env in ir.environments if env.secret_store.kind == "SecretStore"]


def subjects(ir: IR, env: Environment) -> list[str]:
    """The ServiceAccounts the environment's role trusts: each store's, in its namespace."""
    return [
        f"system:serviceaccount:{env.namespace}:{env.secret_store.of(svc.name)}"
        for svc in ir.services
        if svc.secrets
    ]


def _label(env: Environment) -> str:
    return "secrets_" + env.name.replace("-", "_")


def external_secrets(ir: IR) -> list[Block] | None:
    envs = environments(ir)
    if not envs:
        return None
    blocks: list[Block] = []
    region, account = ir.aws.region, ir.aws.account_id
    for env in envs:
        label = _label(env)
        subs: list[str | Template] = list(subjects(ir, env))
        blocks.append(trust(label, account, {env.eks_cluster: subs}))
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

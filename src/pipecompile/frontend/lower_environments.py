"""Lowering, the environments: each one's names, branch patterns, exposure, secrets,
deploy network and the signing keys it admits.  Mixed into :class:`.lower._Lowering`."""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from .. import ir
from ..errors import Path_
from .defaults import IN_CLUSTER, SECRET_STORE
from .lower_rules import short as _short
from .lower_sections import Sections
from .plan import key_uri
from .references import GITHUB_ENVIRONMENTS, reserved_message


class Environments(Sections):
    """Needs what :class:`Sections` needs; sets ``_hotfix`` (the hotfix route)."""

    _hotfix: tuple[str | None, tuple[str, ...]]

    @staticmethod
    def accepted_keys(
        env: ir.Environment, aws: ir.AwsNames, envs: list[ir.Environment]
    ) -> tuple[str, ...]:
        """The signing keys an environment admits: an approval environment only the
        release key; the others the development key, and the release key too when a
        release tier exists (an image released to staging may come back down)."""
        release = key_uri(aws.release_key_alias)  # the plan's contract: awskms:///alias/...
        if env.approval:
            return (release,)
        dev = key_uri(aws.signing_key_alias)
        return (release, dev) if any(e.approval and e.includes for e in envs) else (dev,)

    def environments(self, strategies: dict[str, ir.Strategy]) -> list[ir.Environment]:
        """The environments in promotion order, with their names and branch patterns."""
        project = self.m.project
        envs: list[ir.Environment] = []
        names = list(self.m.environments)
        dast = self.m.security.dast
        # an unknown DAST environment is reported by security(); then nothing is gated
        dast_index = names.index(dast.environment) if dast and dast.environment in names else None
        hotfix_env, hotfix_branches = self._hotfix = self.hotfix_route()
        for index, (name, env) in enumerate(self.m.environments.items()):
            where: Path_ = ("environments", name)
            namespace = env.namespace or f"{project}-{name}"
            if env.namespace is None and len(namespace) > 63:
                self.err(
                    "PC205",
                    where,
                    f"the default namespace '{namespace}' is longer than 63 "
                    "characters; set 'namespace'",
                    key=True,
                )
            if self.m.delivery != "codepipeline" and name in GITHUB_ENVIRONMENTS:
                self.err("PC213", where, reserved_message(name), key=True)
            self.strategy_ref((*where, "strategy"), env.strategy, strategies)
            includes = [b for b in env.branches if not b.startswith("!")]
            excludes = [b[1:] for b in env.branches if b.startswith("!")]
            if name == hotfix_env:  # hotfixes follow the release path (LANGUAGE.md 1.2)
                includes += [b for b in hotfix_branches if b not in includes]
            if not includes:
                self.err(
                    "PC107",
                    (*where, "branches"),
                    "needs at least one branch pattern that is not a '!' exclusion",
                )
            literal = [b for b in includes if not re.search(r"[*?\[\]+!]", b)]
            envs.append(
                ir.Environment(
                    name=name,
                    index=index,
                    branches=tuple(env.branches)
                    + (tuple(hotfix_branches) if name == hotfix_env else ()),
                    includes=tuple(includes),
                    excludes=tuple(excludes),
                    approval=env.approval,
                    namespace=namespace,
                    cluster=env.cluster,
                    url=env.url,
                    deploy_project=f"{project}-{name}-deploy",
                    deploy_log_group=f"/aws/codebuild/{project}-{name}-deploy",
                    # a manual "Release change" builds BranchName (CodePipeline user guide,
                    # pipelines-filter); where only patterns deploy here, the pattern
                    # itself: git refuses it as a branch, so a manual start without a
                    # source revision override fails at Source instead of building
                    # another branch (never the default branch into this environment)
                    manual_start_branch=literal[0] if literal else (includes or [""])[0],
                    github_role_name=_short(f"{project}-deploy-{name}", 64),
                    github_role_arn=f"arn:aws:iam::{self.m.aws.account_id}:role/"
                    + _short(f"{project}-deploy-{name}", 64),
                    codebuild_role_name=_short(f"{project}-codebuild-deploy-{name}", 64),
                    gitops_secret_name=f"{project}/{name}/gitops-credential",
                    argocd_secret_name=f"{project}/{name}/argocd",
                    argocd_project=_short(f"{project}-{name}", 63),
                    sync=env.sync,
                    sync_window=(env.sync_window.schedule, env.sync_window.duration)
                    if env.sync_window
                    else None,
                    dast=index == dast_index,
                    after_dast=dast_index is not None and index > dast_index,
                    approver_role_name=_short(f"{project}-approve-{name}", 64),
                    approval_topic=f"{project}-{name}-approvals",
                    approvers=tuple(env.approvers),
                    # default: one role of that name, which the operator creates (or
                    # not: then nobody approves); never the account as a whole
                    approver_principals=tuple(env.approver_principals)
                    or (
                        (
                            f"arn:aws:iam::{self.m.aws.account_id}:role/"
                            + _short(f"{project}-{name}-approvers", 64),
                        )
                        if env.approval
                        else ()
                    ),
                    approver_variable="approvers_" + name.replace("-", "_"),
                    gitops_repository=env.gitops.repository
                    if env.gitops
                    else self.m.gitops.repository,
                    gitops_revision=(env.gitops.revision if env.gitops else None)
                    or self.m.gitops.revision,
                    eks_cluster=env.eks_cluster
                    or (project if env.cluster == IN_CLUSTER else f"{project}-{name}"),
                    kube_context=f"{project}-{name}",
                    deploy_network=self.deploy_network(name, env),
                    **self.environment_access(name, env),
                )
            )
        return envs

    def deploy_network(self, name: str, env: Any) -> ir.DeployNetwork | None:
        """The deploy project's VPC (CodePipeline only: a GitHub deploy job runs on its
        runner, whose network is the runner's own)."""
        net = env.deploy_network
        if net is None:
            return None
        if self.m.delivery != "codepipeline":
            self.warn(
                "PC304",
                ("environments", name, "deploy_network"),
                f"delivery is {self.m.delivery}: deploy_network places only CodePipeline's "
                "deploy projects in a VPC, so it changes nothing here (a GitHub deploy job "
                "reaches a private Argo CD API from a self-hosted runner inside the VPC); "
                "remove it, or set delivery: codepipeline",
                key=True,
            )
            return None
        return ir.DeployNetwork(net.vpc_id, tuple(net.subnets), tuple(net.security_groups))

    def environment_access(self, name: str, env: Any) -> dict[str, Any]:
        """How the environment is reached (its ALB) and which secrets it may read."""
        project, account = self.m.project, self.m.aws.account_id
        exp = env.exposure
        scheme: Literal["internal", "internet-facing"] = exp.scheme or (
            "internet-facing" if env.approval else "internal"
        )
        domain = exp.domain or (urlsplit(env.url).hostname if env.url else None)
        role = _short(f"{project}-{name}-secrets", 64)
        prefix = env.secret_prefix or f"{project}/{name}/services/"
        deployer = [
            f"{project}/{e}/{kind}"
            for e in self.m.environments
            for kind in ("gitops-credential", "argocd")
        ] + [f"{project}/sonarqube", f"{project}/sonarqube-release"]
        covered = [d for d in deployer if d.startswith(prefix)]
        if covered:
            self.err(
                "PC207",
                ("environments", name, "secret_prefix"),
                f"'{prefix}' would let the services' secret stores read {covered[0]} "
                "(a deploy credential); choose a prefix such as "
                f"'{project}/{name}/services/'",
            )
        return {
            "exposure": ir.Exposure(
                scheme, exp.certificate_arn, domain, _short(f"{project}-{name}", 63)
            ),
            # not <project>/<env>/ itself: the deployer's GitOps and Argo CD secrets
            # live there, and a pod's store must not read them
            "secret_prefix": prefix,
            "secret_store": SECRET_STORE
            if env.secret_store == "cluster"
            else ir.SecretStore("SecretStore", "secrets"),
            "secrets_role_name": role,
            "secrets_role_arn": f"arn:aws:iam::{account}:role/{role}",
        }

"""Who can build, sign, approve and deploy each environment, and what guards it: the GitOps
repository its Argo CD Applications read and the admission policy of its namespace.

Derived from the IR with the same rules the Terraform and the targets use, so what
``explain`` says is what the generated IAM grants (tests/test_trust_attacks.py checks the
IAM itself).
"""

from __future__ import annotations

from ..ir import IR, Environment
from ..targets.common import BUILD_ENVIRONMENT, BUILD_RELEASE_ENVIRONMENT
from ..targets.terraform.approvers import APPROVER_TAG


def _builders(ir: IR, env: Environment) -> tuple[str, str]:
    """(who builds, with which key it signs)."""
    release = env.approval and bool(ir.release_branches)
    branches = ", ".join(ir.release_branches if release else env.includes)
    if ir.delivery == "github-actions":
        role = ir.aws.github_release_role_name if release else ir.aws.github_build_role_name
        environment = BUILD_RELEASE_ENVIRONMENT if release else BUILD_ENVIRONMENT
        who = (
            f"the build job in GitHub environment '{environment}' as IAM role {role}, which "
            f"trusts only build.yml's jobs in that environment on {branches} (the OIDC "
            "subject template: none without it); its deployment branch policy admits the "
            "same (GitHub's matching: a '*' stops at '/'; explain --environments)"
        )
        if release:
            who += (
                " (only repository admins may create such a branch, nested names included: "
                "explain --release-ruleset)"
            )
            if ir.secrets.sonar_token:
                who += (
                    "; its CI scans in GitHub environment 'ci-release' (those branches "
                    "only), into the SonarQube projects <project>_<service>-release"
                )
    else:
        role = ir.aws.release_build_role_name if release else ir.aws.build_role_name
        kind = "release build projects" if release else "build projects"
        who = f"the CodeBuild {kind} of pushes to {branches} as IAM role {role}"
        if release:
            who += " (only repository admins may create such a branch: explain --release-ruleset)"
    svc = ir.services[0]
    repo = ir.image_of(svc, env)[0]
    tier = "release" if release else "dev"
    who += f", into the {tier} tier's ECR repositories ({repo}, ...)"
    if not ir.security.sign_images:
        return who, "nobody: security.sign_images is off (no signature is checked)"
    key = ir.aws.release_key_alias if release else ir.aws.signing_key_alias
    if ir.delivery == "codepipeline":
        project = ir.aws.release_sign_project if release else ir.aws.sign_project
        role = ir.aws.release_sign_role_name if release else ir.aws.sign_role_name
        prefix = "rel" if release else "src"
        sign = (
            f"the sign project {project} alone (IAM role {role}), with {key}, after the "
            f"build: it signs only the digest the registry holds at {prefix}-<tree> of the "
            "pipeline's own source tree; its buildspec is Terraform's and it runs none of "
            "the branch's commands, so the build session that runs them (CI steps, "
            "Dockerfile) cannot sign"
        )
        if release:
            sign += (
                "; the release build may only verify with this key (it reuses an image "
                "only when this key signed it); no dev-tier role may use it or write these "
                "repositories"
            )
    elif release:
        sign = f"that build role alone, with {key}; no dev-tier role may use this key or "
        sign += "write these repositories"
    else:
        sign = f"that build role, with {key}: any deploy branch's code runs there, so this "
        sign += "signature says only 'built by this pipeline'"
    if not release:
        if ir.delivery == "codepipeline":
            sign += (
                "; any deploy branch's code builds in this tier (its Dockerfile decides what "
                "the image holds), so this signature says only 'built by this pipeline from "
                "that tree'"
            )
        first = ir.environments[0]
        if env.index > 0 and first.name != env.name and not first.approval:
            sign += (
                f"; a build of {', '.join(first.includes)} (same role, same key) can push "
                f"the image of a tree {env.name} builds later (src-<tree>), and "
                f"{env.name}'s build reuses it unreviewed"
            )
    return who, sign


def _approver(ir: IR, env: Environment) -> str:
    if not env.approval:
        return "no approval: every push to its branches deploys"
    if ir.delivery == "github-actions":
        return (
            f"the required reviewers of GitHub environment '{env.name}', which pipecompile "
            "does not name: explain --environments turns on prevent_self_review but sets no "
            'reviewers; add "reviewers": [{"type": "Team", "id": <team id>}] (or "User") to '
            "its PUT body, or set them in the repository settings: until then a job of "
            "this environment waits for nobody"
        )
    subscribed = ", ".join(env.approvers) if env.approvers else "nobody yet (approvers: [...])"
    who = ", ".join(env.approver_principals)
    return (
        f"only the principals of var.{env.approver_variable} ({who}), assuming IAM role "
        f"{env.approver_role_name} with MFA, in a session named after the person (an IAM "
        f"user's own name, else the session's '{APPROVER_TAG}' tag, which their identity "
        f"provider sets: a role without it cannot approve), so the approval records who "
        f"approved (every CI role is denied "
        f"codepipeline:PutApprovalResult; a listed approver can still approve their own "
        f"change: keep authors off the list); notified on SNS topic "
        f"{env.approval_topic}: {subscribed}"
    )


def _deployer(ir: IR, env: Environment) -> str:
    if ir.delivery == "github-actions":
        from .environments import unenforced

        line = (
            f"jobs of GitHub environment '{env.name}' as IAM role {env.github_role_name} "
            "(trusted for deploy.yml's jobs there on these branches only), which runs jobs "
            "only of "
            f"{', '.join(env.includes)} (its deployment branch policy: explain --environments)"
        )
        excluded = unenforced(ir, env)
        if excluded:
            line += (
                f"; the policy cannot exclude {', '.join(excluded)}: the workflows skip "
                "them, a hand-edited workflow on such a branch is not refused"
            )
        return line
    return (
        f"CodeBuild project {env.deploy_project} as IAM role {env.codebuild_role_name}, with "
        f"the buildspec Terraform applied (not the branch's); it alone reads "
        f"{env.gitops_secret_name} and writes this environment's audit rows"
    )


def _gitops(ir: IR, env: Environment) -> list[str]:
    repo = env.gitops_repository or "(no GitOps repository)"
    line = f"GitOps: Argo CD reads {repo} at {env.gitops_revision}"
    if not env.approval:
        return [line]
    unapproved, approved = ir.gitops_sharers(env)
    if not unapproved and not approved:
        return [line + " (no other environment's deployer writes it)"]
    out = [line]
    if unapproved:
        out.append(
            f"warning: {', '.join(unapproved)} deploy{'s' if len(unapproved) == 1 else ''} to "
            f"the same GitOps repository; a deploy key or token cannot be limited to a "
            f"folder, so their credential can rewrite {env.name}'s folder and Argo CD would "
            f"sync it without an approval: {env.name}'s workloads change, not only their "
            "images (command, service account, environment, volumes, probes, the canary's "
            f"analysis), or roll back to an older digest signed for {env.name} (the "
            "admission policy refuses only unsigned or other-tier images, the AppProject "
            f"only kinds the chart never renders): give {env.name} its own repository "
            f"(environments.{env.name}.gitops.repository)"
        )
    if approved:
        out.append(
            f"note: {', '.join(approved)} (approved by {'its' if len(approved) == 1 else 'their'} "
            f"own approvers) also write{'s' if len(approved) == 1 else ''} this repository: "
            f"their deployer can change {env.name} without {env.name}'s approval"
        )
    return out


def _admission(ir: IR, env: Environment) -> str:
    if not ir.security.sign_images or "argocd" not in dict(ir.outputs):
        return "admission: none generated (security.sign_images and the argocd output)"
    from ..targets.argocd.admission import accepted, policy_name

    keys = ", ".join(k.removeprefix("awskms:///") for k in accepted(ir, env))
    return (
        f"admission: Kyverno ImageValidatingPolicy {policy_name(ir, env)} admits in "
        f"namespace {env.namespace} (containers, init and ephemeral containers) only this "
        f"environment's images, by digest, signed, with an SBOM and a provenance, by {keys}"
    )


def _promotion(ir: IR, env: Environment) -> list[str]:
    """Who may say a digest passed DAST, for the environments the gate guards."""
    dast = ir.security.dast
    if dast is None or not env.after_dast:
        return []
    role = dast.github_role_name if ir.delivery == "github-actions" else ir.aws.dast_role_name
    return [
        f"DAST gate: deploys only digests recorded as passed in {dast.environment} in "
        f"DynamoDB table {ir.aws.promotions_table}, which only IAM role {role} writes (no "
        "build or deploy role; an ECR tag is never a pass: the release build may push any tag)"
    ]


def _cluster(ir: IR, env: Environment) -> str:
    """Which environments run in the same cluster as ``env``, and what that allows."""
    others = [e.name for e in ir.environments if e.cluster == env.cluster and e is not env]
    if not others:
        return f"cluster: {env.cluster}, no other environment runs there"
    unapproved = [o for o in others if not ir.environment(o).approval]
    whose = (
        f" (also {', '.join(unapproved)}'s, which run code no one approved)"
        if env.approval and unapproved
        else ""
    )
    return (
        f"cluster: shared with {', '.join(others)} (each in its own namespace); no "
        f"NetworkPolicy is generated, so their pods{whose} can reach {env.name}'s Services "
        f"over the cluster network: give {env.name} its own cluster "
        f"(environments.{env.name}.cluster) or isolate the namespaces yourself"
    )


def _not_refused(ir: IR, env: Environment) -> list[str]:
    """What the generated delivery does not refuse yet (README, "Not refused yet"), each
    only where its condition holds."""
    out = []
    release = env.approval and bool(ir.release_branches)
    dast = any(
        ir.plan.stage(s.name, env.name).dast
        for s in ir.services
        if any(d.environment == env.name for d in s.deployments)
    )
    github = ir.delivery == "github-actions"
    if github and release and ir.security.sign_images:
        out.append(
            "not refused yet: the release role trusts only build.yml's jobs in GitHub "
            "environment "
            f"'{BUILD_RELEASE_ENVIRONMENT}' (deployment branches "
            f"{', '.join(ir.release_branches)}), which has no required reviewers: whoever "
            "may push to such a branch can run a workflow there that signs with the "
            "release key"
        )
    if github and dast:
        out.append(
            f"not refused yet: GitHub environment '{env.name}-dast' (the DAST job) has no "
            "required reviewers: whoever may push to one of "
            f"{env.name}'s branches can run zap.yml there and mark a digest "
            f"{env.name} runs as passed"
        )
    if not github and release and ir.security.sign_images:
        out.append(
            "not refused yet: the branch's code runs in the release build session, which "
            "may push an image of its choosing to rel-<its own tree> (ECR tags are "
            "immutable, the first writer wins); the sign project accepts it, since it "
            "proves only which digest sits at that tag"
        )
    if not github and not ir.security.sign_images:
        out.append(
            "not refused yet: without signing, the later actions read the build's exported "
            "IMAGE_TAG and IMAGE_DIGEST, which CodePipeline pastes into their "
            "EnvironmentVariables JSON as plain text: the branch's code can add variables "
            "to them (security.sign_images: true reads a checked copy instead)"
        )
    # with signing the sign project is the scan gate (its report, the approval text's)
    unsigned = not ir.security.sign_images
    if not github and env.approval and ir.security.image_scan_fail_on and unsigned:
        out.append(
            "not refused yet: the ECR scan gate runs in the build session after the "
            "branch's code, which can fake its result (security.sign_images: true has "
            "the sign project read the digest's findings itself); the approval text "
            "points at the build's report"
        )
    if dast and not ir.deployments_table:
        out.append(
            "not refused yet: without an audit table (audit.deployments_table) the DAST "
            f"mark records a pass for the digest it is given without checking that "
            f"{env.name} ran that digest"
        )
    return out


def trust_lines(ir: IR, env: Environment) -> list[str]:
    """The trust of one environment, one fact a line."""
    build, sign = _builders(ir, env)
    return [
        f"who can build: {build}",
        f"who can sign: {sign}",
        f"who can approve: {_approver(ir, env)}",
        f"who can deploy: {_deployer(ir, env)}",
        *_gitops(ir, env),
        _admission(ir, env),
        *_promotion(ir, env),
        _cluster(ir, env),
        *_not_refused(ir, env),
    ]


def trust_report(ir: IR) -> list[str]:
    out = []
    for env in ir.environments:
        out.append(f"environment {env.name} (namespace {env.namespace} on {env.cluster}):")
        out += [f"  {line}" for line in trust_lines(ir, env)]
    return out

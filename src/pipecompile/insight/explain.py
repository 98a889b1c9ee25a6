"""Plain-text explanations from the IR: what an event does, and what must exist outside."""

from __future__ import annotations

import re

from ..ir import IR, Deployment, Environment, Rollback, Service
from ..targets.chart.analysis import (
    FAILURE_LIMIT,
    inconclusive_limit,
    initial_delay_minutes,
    lookback,
    progress_deadline_seconds,
    unjudged_steps,
)
from ..targets.chart.values import https
from ..targets.common import branch_regexes, glob_to_regex
from ..targets.github_actions.ci import ci_file
from ..targets.github_actions.deliver import deliver_file
from ..targets.registry import registry
from .graph import _strategy
from .trust import trust_lines


def matches(env: Environment, branch: str) -> bool:
    """GitHub filter semantics, the same translation the delivery workflows run."""
    inc, exc = branch_regexes(env)
    return bool(re.fullmatch(inc, branch)) and not (exc and re.fullmatch(exc, branch))


def _gates(ir: IR, env: Environment) -> list[str]:
    sec = ir.security
    gates = []
    if sec.sast_fail_on:
        gates.append(f"SonarQube issues at or above {sec.sast_fail_on} fail validation")
    if sec.dependencies_fail_on:
        gates.append(f"dependencies with {sec.dependencies_fail_on} or worse CVEs fail validation")
    if sec.image_scan_fail_on:
        gates.append(f"ECR scan findings at or above {sec.image_scan_fail_on} stop the build")
    if sec.sign_images:
        gates.append("the image signature is verified before deploying")
    dast = sec.dast
    if env.after_dast and dast is not None:
        gates.append(f"only a digest that passed OWASP ZAP in {dast.environment} is promoted here")
    if env.dast and dast is not None:
        scans = [
            ir.plan.stage(svc.name, env.name).dast
            for svc in ir.services
            if any(d.environment == env.name for d in svc.deployments)
        ]
        # the plan's: each service's own host (a manual blue-green's preview)
        urls = ", ".join(s[0].value("DAST_URL") for s in scans if s)
        gates.append(
            f"OWASP ZAP scans each service after its deploy ({urls}); alerts at or above "
            f"{dast.fail_on} block promotion"
        )
    if env.approval:
        topic = ir.notifications.sns_topic
        if ir.delivery == "github-actions":
            where = f"GitHub environment '{env.name}' required reviewers"
        elif "terraform" in dict(ir.outputs):
            where = f"a Manual approval stage in CodePipeline (SNS topic {topic})"
        else:
            where = "required (by the deliverer, not generated here)"
        gates.append("manual approval: " + where)
    gates.append("done when Argo CD reports the new digest Synced and Healthy")
    return gates


def _who(ir: IR, env: Environment) -> str:
    """Which branch, through which GitHub environment or pipeline, with which role."""
    branches = ", ".join(env.branches)
    deliverer = "github-actions" if ir.delivery == "github-actions" else "terraform"
    if deliverer not in dict(ir.outputs):
        return f"a push to {branches}; its deliverer ({ir.delivery}) is not generated here"
    tier = (
        f"; only images built and signed in the release tier ({ir.aws.release_key_alias})"
        if env.approval and ir.release_branches and ir.security.sign_images
        else ""
    )
    if ir.delivery == "github-actions":
        review = "its required reviewers approve, " if env.approval else ""
        return (
            f"a push to {branches}; jobs in GitHub environment '{env.name}' ({review}its "
            f"secrets) assume IAM role {env.github_role_name}, trusted by that environment "
            f"only{tier}"
        )
    review = (
        "an IAM principal allowed codepipeline:PutApprovalResult approves, " if env.approval else ""
    )
    return (
        f"a push to {branches} starts its CodePipelines; {review}the deploy project runs as "
        f"{env.codebuild_role_name}, which alone reads {env.gitops_secret_name}{tier}"
    )


def _rollback(ir: IR, svc: Service, dep: Deployment) -> str:
    """Exactly the rollback this service has in this environment (what the chart's
    Rollout or Deployment does; argo-rollouts v1.9.0 semantics)."""
    rb = ir.rollback
    kind = dep.strategy.kind
    if kind == "rolling":
        return (
            "none: a Deployment (rolling update) keeps the new pods it could not make "
            "ready (ProgressDeadlineExceeded, Argo CD Degraded) and the old ones serving; "
            "the deploy is reported failed, not rolled back"
        )
    parts: list[str] = []
    if rb is not None and rb.health_checks:
        has_metrics = rb.max_error_rate is not None or rb.max_p90_latency is not None
        deadline = progress_deadline_seconds(rb if has_metrics else None, kind) // 60
        parts.append(
            f"no progress within {deadline}m (pods not ready) aborts it (progressDeadlineAbort)"
        )
    triggers = []
    if rb is not None and rb.max_error_rate is not None:
        triggers.append(f"5xx rate > {rb.max_error_rate:g}")
    if rb is not None and rb.max_p90_latency:
        # CloudWatch judges the window's one-minute p90s by their median (analysis.py)
        most = " in most minutes" if rb.provider == "cloudwatch" else ""
        triggers.append(f"p90 latency > {rb.max_p90_latency}{most}")
    if rb is not None and triggers:
        source = (
            f"Prometheus {rb.prometheus_url}, the new pods' rollouts-pod-template-hash"
            if rb.provider == "prometheus"
            else "CloudWatch AWS/ApplicationELB, the canary target group on its ALB"
        )
        idle = (
            f"{inconclusive_limit(rb, kind == 'blue-green') + 1} measurements without "
            "requests pause it for a person (inconclusive)"
            if rb.no_traffic == "inconclusive"
            else "minutes without requests pass"
        )
        # the template's own values: its look-back and failureLimit
        failed = f"the {_ORDINAL[FAILURE_LIMIT + 1]} failed measurement"
        judged = (
            f"{' or '.join(triggers)} over the last {lookback(rb)} ({source}; measured "
            f"each minute from {initial_delay_minutes(rb)}m on, {failed} aborts; {idle})"
        )
        if kind == "canary":
            parts.append(
                f"from the first step, {judged} on {svc.name}-canary aborts it and sends "
                "all traffic back to the stable version" + _unmeasured(rb, dep)
            )
        else:
            parts.append(
                f"before promotion, {rb.measurements} measurements of {judged} on "
                f"{svc.name}-preview: aborted, {svc.name} never switches"
                + (
                    f" (its traffic: GET {rb.smoke_path} once a minute from the controller; "
                    "two answers in a row that are not 2xx abort too)"
                    if rb.smoke_path and rb.provider == "prometheus"
                    else " (its traffic: only what reaches its preview host; none is "
                    "inconclusive: rollback.smoke_path makes requests)"
                )
            )
    if kind == "blue-green" and not dep.strategy.auto_promote:
        parts.append(
            "then it waits for a person to promote (kubectl argo rollouts promote "
            f"{svc.name} -n {dep.namespace}); waiting is not a failure"
            + (
                f" (the deploy waits {dep.strategy.promotion_wait_seconds // 60}m for it, "
                "then reports the post-promotion outcome)"
                if dep.strategy.promotion_wait_seconds
                else ""
            )
        )
    if kind == "blue-green" and rb is not None and triggers:
        parts.append(
            f"after promotion, {rb.measurements} more measurements on {svc.name}: "
            f"{failed} switches it back to the previous version"
        )
    if not parts:
        return "none: no rollback triggers are configured (rollback)"
    return "Argo Rollouts: " + "; ".join(parts)


_ORDINAL = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth"}


def _unmeasured(rb: Rollback, dep: Deployment) -> str:
    """The canary's steps the analysis never measures (the helm target's one rule, which
    its warning PC309 reports)."""
    short = [f"{dep.strategy.steps[i].weight}%" for i in unjudged_steps(rb, dep.strategy)]
    if not short:
        return ""
    steps = f"steps {', '.join(short)} end" if len(short) > 1 else f"step {short[0]} ends"
    return f" (the {steps} before the first measurement: not judged)"


def _exposure(ir: IR, env: Environment) -> str:
    exp = env.exposure
    if exp.certificate_arn:
        tls = f"HTTPS (certificate {exp.certificate_arn}), HTTP redirects to it"
    elif https(env.url):
        tls = (
            "HTTPS with the ACM certificate the AWS Load Balancer Controller discovers "
            "for the hosts (one must be issued; or set exposure.certificate_arn), HTTP "
            "redirects to it"
        )
    else:
        tls = "HTTP only (no https url and no certificate: set exposure.certificate_arn)"
    hosts = (
        ", ".join(h for svc in ir.services for h in _deployment(svc, env).hosts)
        if exp.domain
        else "any host (no domain: each service has its own ALB)"
    )
    group = f"one {exp.scheme} ALB (IngressGroup {exp.group})" if exp.domain else exp.scheme
    return f"{group}, {tls}; hosts {hosts}"


def _secrets(ir: IR, env: Environment) -> str | None:
    readers = [svc for svc in ir.services if svc.secrets]
    if not readers:
        return None
    store = env.secret_store
    keys = ", ".join(key for svc in readers for _, key in _deployment(svc, env).secret_keys)
    if store.kind == "SecretStore":
        via = (
            f"each service's SecretStore <service>-{store.name} authenticates as its "
            f"ServiceAccount <service>-{store.name} (IRSA) and so assumes IAM role "
            f"{env.secrets_role_name}, which only those ServiceAccounts of namespace "
            f"{env.namespace} may assume and which reads only {env.secret_prefix}*"
        )
    else:
        via = f"the {store.kind} '{store.name}' (shared by every namespace)"
    return (
        f"{keys}: {via}; mounted as files (updated in place) and as environment variables "
        "(Reloader rolls the pods out again when they rotate)"
    )


def _deployment(svc: Service, env: Environment) -> Deployment:
    return next(d for d in svc.deployments if d.environment == env.name)


def explain_event(ir: IR, event: str, ref: str) -> list[str]:
    branch = ref.removeprefix("refs/heads/")
    out: list[str] = []
    if event == "schedule":
        dast = ir.security.dast
        if dast is None:
            return ["no scheduled work: security.dast is not configured"]
        if dast.scheduled_url is None:
            return [
                f"no scheduled work: the scheduled DAST scan needs a url on the last "
                f"environment ({ir.environments[-1].name})"
            ]
        where = ", ".join(f"{name} at {url}" for name, url in ir.scheduled_scans())
        scheduled = dast.scheduled_environment
        return [f"dast.yml runs OWASP ZAP against {where} ({scheduled}) on cron '{dast.cron}'"]
    on = dict(ir.outputs)
    envs = [e for e in ir.environments if matches(e, branch)]
    out.append(f"{event} {'to' if event == 'push' else 'into'} branch '{branch}':")
    for svc in ir.services if "github-actions" in on else ():
        where = "" if svc.path == "." else f" when files under {svc.path}/ change"
        if svc.trigger_excludes:
            others = ", ".join(p.removesuffix("/**") for p in svc.trigger_excludes)
            where += f" (not for changes only under {others})"
        if event == "pull_request" and not envs:
            continue
        out.append(f"  {ci_file(svc)} validates {svc.name}{where} (through ci.yml)")
    if event == "pull_request":
        if not envs:
            out.append(
                "  nothing runs: pull requests are validated only when they target "
                "an environment's branch"
            )
        out.append("  pull requests never deploy")
        return out
    if not envs:
        out.append("  no environment deploys from this branch")
        return out
    deliverer = "github-actions" if ir.delivery == "github-actions" else "terraform"
    for env in envs:
        out.append(f"  environment {env.name} (namespace {env.namespace} on {env.cluster}):")
        for svc in ir.services:
            dep = next(d for d in svc.deployments if d.environment == env.name)
            if deliverer not in on:
                who = f"delivered by {ir.delivery} (not generated here)"
            elif ir.delivery == "github-actions":
                who = f"delivered by {deliver_file(svc)} job deploy-{env.name}"
            else:
                who = f"delivered by CodePipeline {dep.pipeline_name}"
            parts = [
                who,
                *([f"Argo CD application {dep.app_name}"] if "argocd" in on else []),
                f"{_strategy(dep.strategy)}, {dep.replicas} replica(s)",
            ]
            out.append(f"    {svc.name}: " + "; ".join(parts))
        if deliverer in on:  # who builds, signs, approves, deploys; what guards it
            out += [f"    {line}" for line in trust_lines(ir, env)]
        else:
            out.append(f"    who can deploy: {_who(ir, env)}")
        for gate in _gates(ir, env):
            out.append(f"    gate: {gate}")
        out.append(f"    reached at: {_exposure(ir, env)}")
        if env.deploy_network:  # lowered for CodePipeline delivery only
            net = env.deploy_network
            out.append(
                f"    deploy network: {env.deploy_project} runs in {net.vpc_id} (subnets "
                f"{', '.join(net.subnets)}; security groups {', '.join(net.security_groups)}), "
                "where it reaches the Argo CD API"
            )
        secrets = _secrets(ir, env)
        if secrets:
            out.append(f"    secrets: {secrets}")
        for svc in ir.services:
            out.append(f"    rollback of {svc.name}: {_rollback(ir, svc, _deployment(svc, env))}")
    out += _hotfix_lines(ir, branch)
    return out


def _hotfix_lines(ir: IR, branch: str) -> list[str]:
    """A hotfix branch: where it is verified, and the production deploy its merge starts."""
    verify, patterns = ir.hotfix
    if verify is None or not any(
        re.fullmatch(p, branch) for p in (glob_to_regex(g) for g in patterns)
    ):
        return []
    prod = ir.environments[-1]
    if ir.delivery == "github-actions":
        how = ", ".join(f"{deliver_file(s)} job deploy-{prod.name}" for s in ir.services)
    else:
        how = ", ".join(
            next(d.pipeline_name for d in s.deployments if d.environment == prod.name)
            for s in ir.services
        )
    return [
        f"  hotfix: built in the release tier and verified in {verify} (its approval and "
        "gates); after the merge into "
        + " or ".join(prod.includes)
        + f", production deploys the digest that passed ({how}), as long as the merge "
        "leaves the files each image is built from as the hotfix had them (the tag is "
        "their tree: a main that changed them since is a new image, which must pass "
        f"{verify} first); "
        f"'hotfixes' in {ir.pipeline_file} changes or turns this off",
    ]


def checklist(ir: IR) -> list[str]:
    """What must exist outside the repository: each enabled target's own list."""
    targets = registry()
    from ..frontend.pins import by_tag_only

    out = [line for name, _ in ir.outputs for line in targets[name].describe(ir)]
    out += [f"Image pin: {line}" for line in by_tag_only(ir.pins)]
    return out or ["nothing: the enabled outputs need nothing outside the repository"]

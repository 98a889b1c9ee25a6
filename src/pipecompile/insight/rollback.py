"""``pipecompile explain --rollback SERVICE ENV``: the manual rollback that works with
this setup (issue 29, item 7).

Why not ``argocd app rollback``: the Applications sync automatically from the GitOps
repository, and Argo CD refuses a rollback while auto-sync is on; turning it off
leaves the cluster differing from Git.  The durable rollback is a commit to the
GitOps repository that puts a previous digest back into ``image-<env>.yaml``, the
file the deploy pipelines write; the audit table says which digests ran before.
An Argo Rollouts rollout still in progress is aborted first (it returns to the
stable ReplicaSet at once).
"""

from __future__ import annotations

import json
import shlex

from ..errors import UsageError, did_you_mean
from ..ir import IR, Deployment, Service
from ..targets.terraform.pipelines import deploy_variables


def _generated(ir: IR, svc: Service, dep: Deployment) -> list[str]:
    """The generated rollback: the deploy path itself, with a reason (rollback.yml on
    GitHub delivery; the environment's deploy project started with overrides on
    CodePipeline delivery), resolving the digest from the audit table."""
    q = shlex.quote
    env = ir.environment(dep.environment)
    head = (
        "The generated rollback (the digest from the audit table: 'previous' is the one "
        "that ran before the current one went live, so rollbacks in a row walk back one "
        "deploy each; or the digest you name if the table lists it as succeeded here; "
        "then the "
        "deploy's own steps: signature check, GitOps commit, health wait; the audit row "
        "records outcome rolled-back, the reason, trigger manual and who ran it):"
    )
    if ir.delivery == "github-actions":
        branch = env.branches[0]
        ref = q(branch) if "*" not in branch else f"'<a branch matching {branch}>'"
        return [
            head,
            f"   gh workflow run rollback.yml --ref {ref} \\",
            f"     -f service={q(svc.name)} -f environment={q(env.name)} "
            "-f reason='<why>'   # optional: -f digest=sha256:...",
            f"   (dispatch from a branch {env.name} deploys, {', '.join(env.branches)}: its "
            "GitHub environment admits no other; its reviewers approve the rollback; no "
            "checkout: only the image file changes in GitOps; the channel hears the result)",
            "",
            "Or by hand, step by step:",
            "",
        ]
    values = {k: v for k, v in deploy_variables(ir, svc, dep).items() if "#{" not in v}
    values |= {"IMAGE_TAG": "rollback", "IMAGE_DIGEST": "previous", "DIGEST": "previous"}
    return [
        head,
        "   REASON='<why>'   # and DIGEST's value below: sha256:... for another succeeded digest",
        *_overrides_json(values),
        f"   aws codebuild start-build --project-name {q(env.deploy_project)} \\",
        "     --source-type-override NO_SOURCE --artifacts-override type=NO_ARTIFACTS \\",
        '     --environment-variables-override "$OVERRIDES"',
        f"   (the project's own role, which reads only {env.name}'s audit rows; no "
        "checkout: only the image file changes in GitOps; no pipeline approval: who may "
        "start this project is who may roll back; then tell the channel)",
        "",
        "Or by hand, step by step:",
        "",
    ]


def _overrides_json(values: dict[str, str]) -> list[str]:
    """The start-build's --environment-variables-override in the AWS CLI's JSON form, built
    by jq: the shorthand ``name=K,value=V`` splits a value at its commas (AWS CLI User
    Guide, cli-usage-shorthand: "," separates the structure's keys), so a reason with a
    comma or a quote broke it.  The fixed values are a JSON literal inside the jq program
    (JSON is a jq value: jq manual 1.7, "Types and Values"); the reason enters only as
    ``--arg`` (a string, never parsed as jq or shell)."""
    fixed = [{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in values.items()]
    items = [json.dumps(o) for o in fixed]
    items.append('{"name": "ROLLBACK_REASON", "value": $reason, "type": "PLAINTEXT"}')
    program = "[\n" + ",\n".join(f"       {i}" for i in items) + "\n     ]"
    return [f'   OVERRIDES=$(jq -n --arg reason "$REASON" {shlex.quote(program)})']


def _sync_window(ir: IR, dep: Deployment) -> list[str]:
    """A closed sync window blocks a rollback as it blocks a deploy: Argo CD syncs the
    Application automatically only inside the window (its AppProject's allow window;
    docs: user-guide/sync_windows).  The generated rollback stops before it records
    anything, with the deploy's outcome outside-sync-window ("sync window closed") in the
    audit row and the channel; in an emergency a person syncs by hand, which the window
    admits (manualSync: true in the generated AppProject)."""
    env = ir.environment(dep.environment)
    if env.sync_window is None:
        return []
    schedule, duration = env.sync_window
    return [
        f"Sync window: {env.name} syncs automatically only inside its window "
        f"({schedule!r} UTC for {duration}). Outside it the generated rollback stops before "
        "it records anything: its outcome is outside-sync-window ('sync window closed' in "
        "the audit row and the channel), never a silent timeout. In an emergency, roll "
        "back by hand (below), then sync by hand, which the window admits (manualSync: "
        "true in its AppProject):",
        f"   argocd app sync {shlex.quote(dep.app_name)}   # after the GitOps commit below",
        "",
    ]


def rollback_commands(ir: IR, service: str, environment: str) -> list[str]:
    svc = next((s for s in ir.services if s.name == service), None)
    if svc is None:
        names = [s.name for s in ir.services]
        raise UsageError(f"unknown service '{service}'{did_you_mean(service, names)}")
    dep = next((d for d in svc.deployments if d.environment == environment), None)
    if dep is None:
        names = [d.environment for d in svc.deployments]
        raise UsageError(f"unknown environment '{environment}'{did_you_mean(environment, names)}")
    q = shlex.quote
    out = [f"Roll {service} back in {environment} (Argo CD Application {dep.app_name}):", ""]
    if ir.deployments_table:
        out += _generated(ir, svc, dep)
    out += _sync_window(ir, dep)
    n = 1
    stream = f"{environment}/{service}"
    if ir.deployments_table:
        # the table is keyed as audit-row.sh writes it (audit.tf): partition
        # stream=<environment>/<service>, sort deployment=<deployed_at>/<run>
        attr_names = '{"#p": "stream", "#o": "outcome"}'
        values = f'{{":p": {{"S": "{stream}"}}, ":o": {{"S": "succeeded"}}}}'
        out += [
            f"{n}. Find the digest to return to (the audit table, newest first):",
            f"   aws dynamodb query --table-name {q(ir.deployments_table)} \\",
            "     --key-condition-expression '#p = :p' --filter-expression '#o = :o' \\",
            f"     --expression-attribute-names {q(attr_names)} \\",
            f"     --expression-attribute-values {q(values)} \\",
            "     --no-scan-index-forward --max-items 5 \\",
            "     --query 'Items[].[deployed_at.S, image_digest.S, image_tag.S, commit.S]' "
            "--output table",
            "",
        ]
    else:
        out += [
            f"{n}. Find the digest to return to: the history of "
            f"{dep.gitops_dir}/image-{environment}.yaml in the GitOps repository "
            "(git log -p); audit.deployments_table would list them",
            "",
        ]
    n += 1
    if dep.strategy.kind in ("canary", "blue-green"):
        out += [
            f"{n}. If a rollout is still in progress, abort it (back to the stable version now):",
            f"   kubectl argo rollouts abort {q(service)} -n {q(dep.namespace)}",
            "",
        ]
        n += 1
    env = ir.environment(environment)
    # the environment's own GitOps repository and branch (issue 28: one per tier), and
    # the deploy's own health wait
    repository = env.gitops_repository or ir.gitops.repository or "<gitops repository>"
    branch = "" if env.gitops_revision in ("", "HEAD") else f" --branch {q(env.gitops_revision)}"
    out += [
        f"{n}. Make the rollback durable in Git (auto-sync would undo anything else; "
        "argocd app rollback is refused while it is on):",
        f"   git clone{branch} {q(repository)} gitops && cd gitops",
        f"   # in {dep.gitops_dir}/image-{environment}.yaml set tag and digest to the ones above",
        f"   git commit -am 'Roll back {service} in {environment} to <digest>: <reason>'",
        "   git push",
        f"   argocd app wait {q(dep.app_name)} --health --timeout {dep.wait_minutes * 60}",
        "",
    ]
    n += 1
    if ir.deployments_table:
        # as audit-row.sh writes a rollback's row: trigger manual marks it as live for
        # rollback-resolve.sh, so the next "previous" walks on from it
        item = (
            '{stream: {S: $p}, deployment: {S: ($at + "/manual-" + $u)}, '
            "service: {S: $s}, deployed_at: {S: $at}, environment: {S: $e}, "
            "commit: {S: $c}, image_digest: {S: $d}, image_tag: {S: $t}, "
            'outcome: {S: "rolled-back"}, reason: {S: $r}, trigger: {S: "manual"}, '
            'actor: {S: $u}, approver: {S: "none (by hand)"}, run: {S: ("manual-" + $u)}}'
        )
        out += [
            f"{n}. Record it (the rollback history with its reason):",
            "   DIGEST='<the digest above>' REASON='<why>'",
            "   TAG='<its tag>' COMMIT='<its commit>'   # the same row's",
            '   at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"',
            f"   aws dynamodb put-item --table-name {q(ir.deployments_table)} \\",
            "     --condition-expression 'attribute_not_exists(#k)' "
            '--expression-attribute-names \'{"#k": "deployment"}\' \\',
            f'     --item "$(jq -nc --arg p {q(stream)} --arg s {q(service)} '
            f"--arg e {q(environment)} \\",
            '       --arg at "$at" --arg d "$DIGEST" --arg t "$TAG" --arg c "$COMMIT" \\',
            '       --arg r "$REASON" --arg u "$(whoami)" \\',
            f'       {q(item)})"',
            "",
        ]
        n += 1
    out.append(
        f"{n}. Tell the channel"
        + (f" {ir.notifications.slack_channel}" if ir.notifications.slack_channel else "")
        + ", and fix forward: the next deploy from the branch replaces the rolled-back digest."
    )
    return out

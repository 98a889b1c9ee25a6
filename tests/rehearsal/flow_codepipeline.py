"""One push through the generated CodePipeline delivery, action by action.

The pipelines are read from the sample's Terraform (``aws_codepipeline``): a push starts
every pipeline whose trigger's branch and file-path globs match (CodePipeline V2 push
filters: ``includes``/``excludes``, an exclude wins).  Its stages then run in order:
Source is the clone of the commit (``CODEBUILD_CLONE_REF``); a CodeBuild action runs its
project's buildspec (``aws_codebuild_project``: the buildspec file, the project's
environment variables, then the action's ``EnvironmentVariables``, the later winning;
``#{SignVariables.X}`` and ``#{codepipeline.PipelineExecutionId}`` resolved as
CodePipeline resolves them, as plain text in the configuration's JSON string, which is
then parsed (:func:`substituted`);
``SECRETS_MANAGER`` values read from Secrets Manager) as root, the phases as CodeBuild
runs them (buildspec reference, v0.2: every command in one shell, so ``cd`` and
``export`` carry over; a failed install or pre_build ends the build, a failed build
still runs post_build; each phase's ``finally`` runs after its commands;
``CODEBUILD_BUILD_SUCCEEDING`` is 0 after a failure, in that phase's ``finally`` too
(User Guide, build-env-ref-env-vars: "Set to 0 if the build is failing, or 1 if the
build is succeeding"; build-spec-ref: a ``finally`` block runs even if a command in
its ``commands`` failed; the guide does not say when inside a phase the variable
changes, so the generated ``finally`` does not read a success from it);
``exported-variables`` become the action's namespace); a Manual approval is approved.
A failed action fails the execution.  The execution's state change is then matched
against the generated EventBridge rules (``aws_cloudwatch_event_rule``), whose
target's input template is the notification Chatbot posts.

cosign is installed by the buildspec from GitHub (the deploy's build phase, the build's and
sign's install phase); offline, the harness
provides it (the stub), so that command is recorded, not run.  The application's own CI
commands (``ci.steps``) are recorded, not run, as on GitHub."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, hcl_norm
from tests.harness.codepipeline_api import CodePipelineAPI
from tests.harness.world import CODEBUILD_UID, World, role_credentials
from tests.rehearsal.flow import App, filtered, git
from tests.rehearsal.iam_calls import request

VARIABLE = re.compile(
    r'name = \\?"([^"\\]*)\\?", value = \\?"([^"\\]*)\\?", type = \\?"([^"\\]*)\\?"'
)
# a value holding quotes (a JSON list, the Sign action's IMAGE_EXCLUDES): an HCL string
# with its escapes (Terraform's string literals: \" \\ \n, and $${ %%{ for a literal
# ${ %{), which the pattern above cannot read
QUOTED = r'"((?:[^"\\]|\\.)*)"'
ESCAPED = re.compile(rf"name = {QUOTED}, value = {QUOTED}, type = {QUOTED}")


def _resources(folder: Path, kind: str) -> dict[str, Any]:
    import hcl2

    out: dict[str, Any] = {}
    for path in sorted(folder.glob("*.tf")):
        for block in hcl_norm(hcl2.loads(path.read_text())).get("resource", []):
            out.update(block.get(kind, {}))
    return out


def approver(env: str) -> str:
    """Who approves ``env``'s Approval stage in the rehearsal (an IAM user's ARN)."""
    return f"arn:aws:iam::123456789012:user/{env}-approver"


def _unescape(value: str) -> str:
    value = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), value)
    return value.replace("$${", "${").replace("%%{", "%{")


def _variables(text: str) -> list[tuple[str, str, str]]:
    found = ESCAPED.findall(text or "")
    if found and not any("\\" in n for n, _, _ in found):
        return [(n, _unescape(v), t) for n, v, t in found]
    return VARIABLE.findall(text or "")


REFERENCE = re.compile(r"#\{(\w+)\.(\w+)\}")


def substituted(
    rows: list[tuple[str, str, str]], namespaces: dict[str, dict[str, str]]
) -> list[tuple[str, str, str]]:
    """An action's EnvironmentVariables as the CodeBuild action receives them.  Terraform's
    jsonencode gives CodePipeline a JSON string; CodePipeline replaces each
    ``#{namespace.variable}`` in it as plain text, with no escaping, and CodeBuild parses the
    result (aws-cdk issue #8458: a commit message in a source variable makes the
    EnvironmentVariables "not match expected format"; #31213: a variable holding a
    newline or quote is not JSON-safe once expanded, and there is no way to make it so).
    A quote in a value therefore ends its string and can add variables: the rehearsal does
    the same."""
    text = json.dumps([{"name": n, "value": v, "type": t} for n, v, t in rows])
    text = REFERENCE.sub(lambda v: namespaces.get(v[1], {}).get(v[2], ""), text)
    # a row without a type is PLAINTEXT (CodeBuild API, EnvironmentVariable.type: the default)
    return [(r["name"], r["value"], r.get("type", "PLAINTEXT")) for r in json.loads(text)]


@dataclass
class Execution:
    pipeline: str
    sha: str
    id: str
    state: str = "SUCCEEDED"
    actions: dict[str, str] = field(default_factory=dict)  # stage -> succeeded/failed
    log: list[str] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)
    # StopPipelineExecution without abandon was asked while an action ran ("Stop and
    # wait", CodePipeline user guide pipelines-stop.html): the action completes, no later
    # action starts, and the execution ends Stopped
    stop_requested: bool = False


class CodePipelineDelivery:
    def __init__(
        self,
        w: World,
        sample: Path,
        app: App,
        *,
        app_commands: set[str],
        env: dict[str, str],
        approvals: CodePipelineAPI | None = None,
    ) -> None:
        tf = sample / "infrastructure/terraform/cicd"
        self.w, self.sample, self.app, self.env = w, sample, app, env
        self.app_commands = app_commands
        self.approvals = approvals  # where ListActionExecutions answers who approved
        self.pipelines = _resources(tf, "aws_codepipeline")
        self.projects = _resources(tf, "aws_codebuild_project")
        self.topics = _resources(tf, "aws_sns_topic")
        self.rules = _resources(tf, "aws_cloudwatch_event_rule")
        self.targets = _resources(tf, "aws_cloudwatch_event_target")
        self.roles = _resources(tf, "aws_iam_role")
        # what CodePipeline itself calls with the pipeline's role_arn, in moto's recorder's
        # shape (tests/rehearsal/iam_calls.py): the source connection, each build it
        # starts and polls, each approval's notification
        self.pipeline_calls: list[dict[str, Any]] = []
        self.hooks: dict[str, Any] = {}  # "<environment>" -> callable before that deploy
        self.executions: list[Execution] = []

    def triggered(self, branch: str, changed: list[str]) -> list[str]:
        out = []
        for label, p in self.pipelines.items():
            push = p["trigger"][0]["git_configuration"][0]["push"][0]
            br, fp = push["branches"][0], push["file_paths"][0]
            if not filtered(br.get("includes", []), branch) or filtered(
                br.get("excludes", []), branch
            ):
                continue
            if any(
                filtered(fp.get("includes", []), c) and not filtered(fp.get("excludes", []), c)
                for c in changed
            ):
                out.append(label)
        return out

    def push(self, branch: str, sha: str, changed: list[str], **kw: Any) -> list[Execution]:
        return [self.run(label, sha, **kw) for label in self.triggered(branch, changed)]

    def run(self, label: str, sha: str) -> Execution:
        p = self.pipelines[label]
        ex = Execution(p["name"], sha, str(uuid.uuid4()))
        self.executions.append(ex)
        namespaces: dict[str, dict[str, str]] = {"codepipeline": {"PipelineExecutionId": ex.id}}
        role = self._role(p["role_arn"])
        for stage in p["stage"]:
            action = stage["action"][0]
            config = action.get("configuration", {})
            if action["category"] == "Source":
                # CodePipeline user guide, connections-permissions: UseConnection
                self.pipeline_calls.append(
                    request(role, "codestar-connections", "UseConnection", config)
                )
                continue
            if action["category"] == "Approval":
                if "NotificationArn" in config:  # the approval's SNS notification
                    topic = self._reference(config["NotificationArn"])
                    self.pipeline_calls.append(request(role, "sns", "Publish", {"TopicArn": topic}))
                ex.actions[stage["name"]] = "succeeded"
                if self.approvals is not None:
                    env_name = label.rsplit("-", 1)[-1]
                    self.approvals.approve(p["name"], ex.id, approver(env_name), stage["name"])
                    # QUEUED mode: the next execution's approval can be the latest one
                    self.approvals.approve(
                        p["name"], str(uuid.uuid4()), approver("queued"), stage["name"]
                    )
                continue
            project_label = re.search(
                r"aws_codebuild_project\.([\w-]+)", action["configuration"]["ProjectName"]
            )[1]  # type: ignore[index]
            # the CodeBuild action starts the build and polls it (CodePipeline user guide,
            # security-iam "Add permissions for other AWS services": StartBuild,
            # BatchGetBuilds on the project)
            project = {"projectName": self.projects[project_label]["name"]}
            for op in ("StartBuild", "BatchGetBuilds"):
                self.pipeline_calls.append(request(role, "codebuild", op, project))
            env_name = label.rsplit("-", 1)[-1]
            if stage["name"] == "Deploy" and env_name in self.hooks:
                self.hooks.pop(env_name)(ex)
            ok, exported = self.codebuild(
                project_label,
                substituted(
                    _variables(action["configuration"].get("EnvironmentVariables", "")),
                    namespaces,
                ),
                namespaces,
                ex,
            )
            if "namespace" in action:
                namespaces[action["namespace"]] = exported
            ex.actions[stage["name"]] = "succeeded" if ok else "failed"
            # Stop and wait (pipelines-stop.html): the in-progress action completes,
            # Succeeded or Failed, "Then the execution is in a Stopped state" either way
            if ex.stop_requested:
                ex.state = "STOPPED"
                break
            if not ok:
                ex.state = "FAILED"
                break
        ex.notifications = self.notify(ex)
        return ex

    def service_role(self, label: str) -> str:
        """The name of the IAM role CodeBuild project ``label`` runs as (its service_role)."""
        return self._role(self.projects[label]["service_role"])

    def _role(self, ref: str) -> str:
        """The name of the role ``${aws_iam_role.<label>.arn}`` names."""
        m = re.fullmatch(r"\$\{aws_iam_role\.([\w-]+)(?:\[0\])?\.arn\}", ref)
        assert m, ref
        return str(self.roles[m[1]]["name"])

    def _reference(self, value: str) -> str:
        """A project variable that names another resource (``${aws_sns_topic.x.arn}``): its
        ARN as AWS forms it (arn:aws:sns:<region>:<account>:<name>)."""
        m = re.fullmatch(r"\$\{aws_sns_topic\.(\w+)(?:\[0\])?\.arn\}", value)
        if not m:
            return value
        topic = self.topics[m[1]]["name"]
        return f"arn:aws:sns:{self.w.env['AWS_DEFAULT_REGION']}:123456789012:{topic}"

    def codebuild(
        self,
        label: str,
        overrides: list[tuple[str, str, str]],
        namespaces: dict[str, dict[str, str]],
        ex: Execution,
        started_by: str | None = None,
        source: bool = False,
    ) -> tuple[bool, dict[str, str]]:
        """``started_by``: a start-build by that identity with ``--source-type-override
        NO_SOURCE`` (a manual rollback), not the pipeline's action: the source folder is
        empty, CODEBUILD_RESOLVED_SOURCE_VERSION is unset ("An identifier for the version
        of a build's source code", which a build without source has not), and
        CODEBUILD_INITIATOR is the caller ("If an IAM user started the build, this is the
        user's name"; an assumed role's session shows as <role>/<session>; CodeBuild User
        Guide, build-env-ref-env-vars.md).  ``source``: that start-build overrides the
        source with the application repository at ``ex.sha`` instead (StartBuild's
        sourceTypeOverride, sourceLocationOverride and sourceVersion): the folder holds
        that checkout and CODEBUILD_RESOLVED_SOURCE_VERSION names it, as for the
        pipeline's action."""
        project = self.projects[label]
        m = re.search(r"ci/codebuild/[\w.-]+\.yml", project["source"][0]["buildspec"])
        spec = yaml.safe_load((self.sample / m[0]).read_text())  # type: ignore[index]
        env: dict[str, str] = dict(spec["env"].get("variables", {}))
        # CodeBuild reads the build's secrets with the project's service role (CodeBuild
        # User Guide, build-spec-ref.md "secrets-manager", and auth-and-access-control-
        # iam-identity-based-access-control: the service role needs
        # secretsmanager:GetSecretValue): the rehearsal reads them as that role
        role = self.service_role(label)
        for name, ref in spec["env"].get("secrets-manager", {}).items():
            env[name] = self.secret(ref, role)
        rows = project["environment"][0].get("environment_variable", [])
        # python-hcl2 keeps a string's escapes (\" in a JSON list): CodeBuild gets the value
        pairs = [
            (r["name"], _unescape(r["value"]), r.get("type", "PLAINTEXT")) for r in rows
        ] + overrides
        for name, value, kind in pairs:
            value = re.sub(
                r"#\{(\w+)\.(\w+)\}", lambda v: namespaces.get(v[1], {}).get(v[2], ""), value
            )
            value = self._reference(value)
            env[name] = self.secret(value, role) if kind == "SECRETS_MANAGER" else value
        n = len(self.executions)
        work = self.w.workdir(f"cb-{n}-{label}-{uuid.uuid4().hex[:6]}", CODEBUILD_UID)
        checkout = started_by is None or source
        if checkout:
            git(work, "init", "-q")
            git(work, "fetch", "-q", str(self.app.remote), ex.sha)
            git(work, "checkout", "-q", "FETCH_HEAD")
        home = self.w.home(f"cb-{n}-{label}-{uuid.uuid4().hex[:6]}", CODEBUILD_UID)
        build_id = f"{project['name']}:{uuid.uuid4()}"
        # the build's AWS credentials: a session of the project's service role (CodeBuild
        # API, Project.serviceRole: "The ARN of the IAM role that enables CodeBuild to
        # interact with dependent Amazon Web Services services")
        env.update(role_credentials(role))
        env.update(
            CODEBUILD_SRC_DIR=str(work),
            CODEBUILD_BUILD_ID=build_id,
            CODEBUILD_BUILD_ARN=f"arn:aws:codebuild:{self.w.env['AWS_DEFAULT_REGION']}:123456789012:build/{build_id}",
            CODEBUILD_INITIATOR=started_by or f"codepipeline/{ex.pipeline}",
            **self.env,
        )
        if checkout:
            env["CODEBUILD_RESOLVED_SOURCE_VERSION"] = ex.sha
        (work.parent / f"{work.name}.sh").write_text(self.script(spec, work))
        # each build is a fresh container: its own /tmp (the buildspecs keep OUTCOME_FILE
        # and IMAGE_ENV there), a private mount over the host's for this build only, with
        # the rehearsal's folder (itself under /tmp) bound back at its own path in it
        tmp = work.parent / f"{work.name}-tmp"
        # bound back: the rehearsal's folder, and this checkout when it lies under /tmp
        # too (a fresh clone in /tmp/x: the AWS CLI of .venv-tools is there)
        keep = [self.w.base] + ([ROOT] if ROOT.is_relative_to("/tmp") else [])
        binds = []
        for path in keep:
            (tmp / path.relative_to("/tmp")).mkdir(parents=True, exist_ok=True)
            binds.append(f'mount --bind "{path}" "{tmp / path.relative_to("/tmp")}" && ')
        tmp.chmod(0o1777)
        script = (
            "exec unshare --mount --propagation private sh -c "
            f"'{''.join(binds)}"
            f'mount --rbind "{tmp}" /tmp && exec bash "{work.parent / work.name}.sh"\''
        )
        res = self.w.run(script, uid=CODEBUILD_UID, cwd=work, home=home, limit=90, **env)
        ex.log.append(f"== {label}: exit {res.returncode}\n{res.stdout}{res.stderr}")
        exported = {}
        out = work / ".exported"
        if out.exists():
            exported = dict(
                line.split("=", 1) for line in out.read_text().splitlines() if "=" in line
            )
        return res.returncode == 0, exported

    def script(self, spec: dict[str, Any], work: Path) -> str:
        cmds = work.parent / f"{work.name}-commands"
        cmds.mkdir()
        lines = ["export CODEBUILD_BUILD_SUCCEEDING=1", "failed=''"]
        for phase in ("install", "pre_build", "build", "post_build"):
            body = spec["phases"].get(phase)
            if not body:
                continue
            run_if = (
                '[ -z "$failed" ] || [ "$failed" = build ]'
                if phase == "post_build"
                else '[ -z "$failed" ]'
            )
            fn = [f"run_{phase}() {{"]
            for i, cmd in enumerate(body.get("commands", [])):
                if "github.com/sigstore/cosign/releases" in cmd or cmd.strip() in self.app_commands:
                    fn.append(f"  echo 'recorded, not run: {cmd.splitlines()[0][:60]}'")
                    continue
                (cmds / f"{phase}-{i}.sh").write_text(cmd)
                # "Set to 0 if the build is failing" (build-env-ref-env-vars)
                fail = f"{{ export CODEBUILD_BUILD_SUCCEEDING=0; failed={phase}; }}"
                # its status read after it, never '. cmd.sh || ...': bash ignores set -e
                # in a command of an || list, subshells within it included (bash manual,
                # "The Set Builtin", -e), so a script's failing find or cp did not end it
                # and the build went on as CodeBuild's would not
                fn.append(f'  . "{cmds}/{phase}-{i}.sh"')
                fn.append(f"  [ $? -eq 0 ] || {fail}")
                fn.append('  [ -n "$failed" ] && return 0')
            fn.append("  true")
            fn.append("}")
            fin = [f"fin_{phase}() {{"]
            for i, cmd in enumerate(body.get("finally", [])):
                (cmds / f"{phase}-f{i}.sh").write_text(cmd)
                fin.append(f'  . "{cmds}/{phase}-f{i}.sh"')
                fin.append(f"  [ $? -eq 0 ] || failed=${{failed:-{phase}}}")
            fin.append("  true")
            fin.append("}")
            lines[:0] = fn + fin
            lines.append(f"if {run_if}; then run_{phase}; fin_{phase}; fi")
        exported = " ".join(spec["env"].get("exported-variables", []))
        lines.append(
            f'for v in {exported}; do printf "%s=%s\\n" "$v" "${{!v:-}}"; done > "{work}/.exported"'
        )
        lines.append('[ -z "$failed" ]')
        return "\n".join(lines) + "\n"

    def secret(self, ref: str, role: str) -> str:
        name, _, key = ref.partition(":")
        client = self.w.client("secretsmanager", role)
        value = client.get_secret_value(SecretId=name)["SecretString"]
        return json.loads(value)[key] if key else value

    def notify(self, ex: Execution) -> list[str]:
        """The execution's state change through the generated EventBridge rules."""
        event = {
            "source": "aws.codepipeline",
            "detail-type": "CodePipeline Pipeline Execution State Change",
            "detail": {"pipeline": ex.pipeline, "state": ex.state, "execution-id": ex.id},
        }
        out = []
        for label, rule in self.rules.items():
            if "event_pattern" not in rule:  # a schedule
                continue
            pattern = json.loads(rule["event_pattern"].replace('\\"', '"'))
            if pattern.get("source", ["aws.codepipeline"]) != ["aws.codepipeline"]:
                continue
            detail = pattern.get("detail", {})
            if all(event["detail"].get(k) in v for k, v in detail.items() if isinstance(v, list)):
                target = self.targets.get(label)
                if target and "input_transformer" in target:
                    tr = target["input_transformer"][0]
                    text = tr["input_template"].replace('\\"', '"')
                    # each input path's value from the event (EventBridge input transformer:
                    # "$.detail.x" names event["detail"]["x"]; a string lands unquoted)
                    for name, path in tr["input_paths"].items():
                        value: Any = event
                        for key in path.removeprefix("$.").split("."):
                            value = value[key]
                        text = text.replace(f"<{name}>", str(value))
                    out.append(json.loads(text)["content"]["title"])
        return out

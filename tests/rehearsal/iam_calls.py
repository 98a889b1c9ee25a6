"""Every AWS call the rehearsal's scripts made, checked against the IAM role that runs
the step in production (issue 26 trace: moto serves without authorization, so a missing
permission would pass the rehearsal and fail the first real release).

Why not moto's own IAM enforcement (``INITIAL_NO_AUTH_ACTION_COUNT``): moto 5.2.5 checks
a request's action against the caller's policies but, outside S3, with the resource
``*`` and without condition keys (moto/core/responses.py
``_authenticate_and_authorize_normal_action`` builds its IAMRequest without a resource;
moto/iam/access_control.py ``IAMPolicyStatement`` ignores ``Condition``), so the
policies' resource scoping (the release repositories, the signing keys) and their
``dynamodb:LeadingKeys`` conditions would all pass; it would also need every role
created from the Terraform.  Instead each request moto served is read back from its
recorder (:func:`tests.harness.moto.moto_server`), named by its API operation and the
resource it names, and evaluated with :mod:`tests.iam_eval` against the generated policy
of the role whose session made it: every step runs with an access key naming its role
(:func:`tests.harness.world.role_credentials`: the GitHub job's
configure-aws-credentials ``role-to-assume``, the CodeBuild project's ``service_role``).

What a request authorizes is AWS's "Actions, resources, and condition keys" table of
each service (Service Authorization Reference): the action is ``<prefix>:<Operation>``;
the resource and condition keys used here are

* ECR: the repository (``repositoryName``), ``*`` for GetAuthorizationToken and
  GetRegistryScanningConfiguration;
* DynamoDB: the table; ``dynamodb:LeadingKeys``: the partition key values the request
  names (PutItem's Item, GetItem's Key, Query's key condition);
* KMS: the key (an alias is resolved to its key, as KMS authorizes the key);
* Secrets Manager: the secret; SNS: the topic; CodePipeline: the pipeline (an
  approval: ``<pipeline>/<stage>/<action>``); CodeBuild reports: the report group;
* Inspector, CloudWatch PutMetricData, STS GetCallerIdentity: ``*``.

Not covered: what a service does with the caller's credentials on its own (DynamoDB's
or ECR's use of a table's or repository's KMS key, checked as ``kms:ViaService`` by AWS);
the registry protocol of docker and cosign, which the stubs speak as the equivalent ECR
API calls (PutImage, BatchGetImage), so those are checked; requests to the loopback
GitHub, Argo CD and SonarQube APIs (not AWS)."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlparse

from tests.harness.world import NO_CREDENTIALS, World, role_credentials, role_of
from tests.iam_eval import Account, Statement, evaluate

# the signing name in a request's credential scope, where the IAM prefix differs
PREFIX = {"monitoring": "cloudwatch"}
# REST operations by path (inspector2's API reference: ListFindings POST /findings/list)
REST = {
    ("inspector2", "/findings/list"): "ListFindings",
    ("inspector2", "/coverage/list"): "ListCoverage",
}
CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Call:
    """One AWS request a step made: the access key (naming the step's role), the IAM
    action and the request's parameters."""

    key: str
    action: str
    params: dict[str, Any] = field(hash=False, compare=False)

    def __str__(self) -> str:
        names = (
            "repositoryName",
            "TableName",
            "KeyId",
            "SecretId",
            "TopicArn",
            "pipelineName",
            "projectName",
        )
        named = [f"{n}={self.params[n]}" for n in names if n in self.params]
        return f"{self.action}({', '.join(named)})"


def recorded(w: World, extra: list[dict[str, Any]] | None = None) -> list[Call]:
    """The requests moto recorded (and ``extra`` entries in the recorder's shape, from a
    stub moto stands behind), but the harness's own (its key is ``testing``) and those a
    stub makes as its own means (X-Harness-Stub: the registry's scan on push, the
    signature check cosign makes locally); a KMS key
    named by id or ARN is named by its alias, which the policies' keys are known by."""
    assert w.recording is not None
    lines = w.recording.read_text().splitlines() if w.recording.exists() else []
    entries = [json.loads(line) for line in lines] + list(extra or [])
    aliases = {
        a["TargetKeyId"]: a["AliasName"]
        for a in w.client("kms").list_aliases()["Aliases"]
        if "TargetKeyId" in a
    }
    calls = []
    for e in entries:
        auth = CREDENTIAL.search(e["headers"].get("Authorization", ""))
        if not auth or auth[1] == "testing" or "X-Harness-Stub" in e["headers"]:
            continue
        key, service = auth[1], PREFIX.get(auth[3], auth[3])
        body = e.get("body") or ""
        raw = base64.b64decode(body).decode() if e.get("body_encoded") else body
        target = e["headers"].get("X-Amz-Target", "")
        if target:
            op, params = target.rsplit(".", 1)[1], json.loads(raw or "{}")
        elif raw.startswith("Action=") or "&Action=" in raw:
            params = dict(parse_qsl(raw))
            op = params["Action"]
        else:
            op = REST.get((service, urlparse(e["url"]).path), f"? {urlparse(e['url']).path}")
            params = json.loads(raw) if raw.startswith("{") else {}
        if service == "kms" and "KeyId" in params:
            kid = str(params["KeyId"]).rsplit("/", 1)[-1]
            params["KeyId"] = aliases.get(kid, params["KeyId"])
        calls.append(Call(key, f"{service}:{op}", params))
    return calls


def request(role: str, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """A call a service makes itself with a role's credentials (CodePipeline's with the
    pipeline's role), in moto's recorder's shape, for :func:`recorded`'s ``extra``."""
    key = role_credentials(role)["AWS_ACCESS_KEY_ID"]
    return {
        "headers": {
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key}"
            f"/20300101/us-east-1/{service}/aws4_request",
            "X-Amz-Target": f"{service}.{operation}",
        },
        "method": "POST",
        "url": "/",
        "body": json.dumps(params),
        "body_encoded": False,
    }


def _rehome(arn: str, acct: Account) -> str:
    """An ARN moto formed (its account and region) as the generated policy names it."""
    parts = arn.split(":", 5)
    if len(parts) == 6:
        parts[3] = parts[3] and acct.region
        parts[4] = parts[4] and acct.account
    return ":".join(parts)


def _kms_key(acct: Account, key: str) -> str | None:
    """The ARN of the Terraform key an alias names (aws_kms_alias's target_key_id)."""
    for label, body in acct.resources.items():
        if label.startswith("aws_kms_alias.") and body["name"] == key:
            m = re.fullmatch(
                r"\$\{aws_kms_key\.([\w-]+)(?:\[0\])?\.key_id\}", body["target_key_id"]
            )
            if m:
                return acct.arn(f"aws_kms_key.{m[1]}")
    return None


def _leading_keys(acct: Account, op: str, p: dict[str, Any]) -> list[str] | None:
    """dynamodb:LeadingKeys: the partition key values of the request (None: it names
    none, as a Scan)."""
    (hash_key,) = [
        b["hash_key"]
        for k, b in acct.resources.items()
        if k.startswith("aws_dynamodb_table.") and b["name"] == p["TableName"]
    ] or [None]
    if hash_key is None:
        return None
    item = p.get("Item") if op == "PutItem" else p.get("Key")
    if isinstance(item, dict) and hash_key in item:
        return [next(iter(item[hash_key].values()))]
    if op == "Query":
        names = {v: k for k, v in (p.get("ExpressionAttributeNames") or {}).items()}
        values = p.get("ExpressionAttributeValues") or {}
        for name, ref in re.findall(r"([#\w]+)\s*=\s*(:\w+)", p.get("KeyConditionExpression", "")):
            if names.get(hash_key) == name or name == hash_key:
                return [next(iter(values[ref].values()))]
    return None


def target(acct: Account, call: Call) -> tuple[str, dict[str, Any]] | None:
    """The resource ARN and condition keys ``call`` is authorized on (None: unknown)."""
    service, op = call.action.split(":", 1)
    p, r, a = call.params, acct.region, acct.account
    if service == "ecr":
        if "repositoryName" in p:
            return f"arn:aws:ecr:{r}:{a}:repository/{p['repositoryName']}", {}
        if op in ("GetAuthorizationToken", "GetRegistryScanningConfiguration"):
            return "*", {}
    if service == "dynamodb" and "TableName" in p:
        ctx: dict[str, Any] = {}
        keys = _leading_keys(acct, op, p)
        if keys is not None:
            ctx["dynamodb:LeadingKeys"] = keys
        return f"arn:aws:dynamodb:{r}:{a}:table/{p['TableName']}", ctx
    if service == "kms" and "KeyId" in p:
        arn = _kms_key(acct, str(p["KeyId"]))
        return (arn, {}) if arn else None
    if service == "secretsmanager" and "SecretId" in p:
        name = str(p["SecretId"])
        if name.startswith("arn:"):  # moto's ARN: ...:secret:<name>-<6 characters>
            name = name.split(":", 6)[6].rsplit("-", 1)[0]
        return f"arn:aws:secretsmanager:{r}:{a}:secret:{name}-AbCdEf", {}
    if service == "sns" and "TopicArn" in p:
        return _rehome(str(p["TopicArn"]), acct), {}
    if service == "codepipeline" and "pipelineName" in p:
        arn = f"arn:aws:codepipeline:{r}:{a}:{p['pipelineName']}"
        if op == "PutApprovalResult":
            arn += f"/{p['stageName']}/{p['actionName']}"
        return arn, {}
    if service == "codebuild" and "projectName" in p:
        return f"arn:aws:codebuild:{r}:{a}:project/{p['projectName']}", {}
    if service == "codestar-connections" and "ConnectionArn" in p:
        return acct.resolve(str(p["ConnectionArn"])), {}
    if service == "codebuild":
        arn = p.get("reportGroupArn") or p.get("arn")
        if isinstance(arn, str):
            return _rehome(arn, acct), {}
    if service == "cloudwatch" and op == "PutMetricData":
        return "*", {"cloudwatch:namespace": p.get("Namespace", "")}
    if service == "inspector2" or call.action == "sts:GetCallerIdentity":
        return "*", {}
    return None


def denials(acct: Account, calls: list[Call]) -> list[str]:
    """Each distinct call the role that made it may not make: the call, the role and the
    action it lacks (or why the call cannot be checked)."""
    by_name = {role.name: label for label, role in acct.roles.items()}
    out: list[str] = []
    for call in _distinct(calls):
        role = role_of(call.key)
        if role is None:
            why = "no credentials" if call.key == NO_CREDENTIALS else f"key {call.key}"
            out.append(f"{call}: made with {why} (no role runs it)")
            continue
        if role not in by_name:
            out.append(f"{call}: role {role!r} is not generated")
            continue
        found = target(acct, call)
        if found is None:
            out.append(f"{call}: role {role}: the rehearsal cannot name its resource")
            continue
        resource, ctx = found
        decision = evaluate(acct.roles[by_name[role]].policy, call.action, resource, ctx)
        if decision != "Allow":
            cond = f" with {ctx}" if ctx else ""
            out.append(f"{call}: role {role} lacks {call.action} on {resource}{cond} ({decision})")
    return out


def _distinct(calls: list[Call]) -> list[Call]:
    """One call per role, action and what it names (the same call repeats per run)."""
    seen: dict[str, Call] = {}
    for c in calls:
        seen.setdefault(f"{c.key} {c} {json.dumps(_scope(c), sort_keys=True)}", c)
    return list(seen.values())


def _scope(c: Call) -> Any:
    p = c.params
    return [p.get(k) for k in ("Item", "Key", "ExpressionAttributeValues", "stageName")]


def without(acct: Account, role: str, action: str) -> Account:
    """``acct``, changed in place: ``action`` removed from every Allow of the role named
    ``role`` (a statement left with no action is dropped)."""
    label = next(lb for lb, r in acct.roles.items() if r.name == role)
    policy = []
    for st in acct.roles[label].policy:
        if st.effect == "Allow" and action in st.actions:
            kept = tuple(a for a in st.actions if a != action)
            if not kept:
                continue
            st = Statement(
                st.effect, kept, st.resources, st.conditions, st.principals, st.not_resources
            )
        policy.append(st)
    acct.roles[label].policy = policy
    return acct

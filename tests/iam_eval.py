"""A small IAM policy evaluator over the generated Terraform (python-hcl2), for the
attacker tests of tests/trust/test_trust_attacks.py.

Why not moto: moto enforces IAM only for a few services behind a global switch, without
condition keys such as dynamodb:LeadingKeys or aws:MultiFactorAuthPresent, and it would
first need the Terraform applied.  This evaluator reads the policy documents exactly as
Terraform would build them and implements the parts of AWS's evaluation logic our
policies use (IAM User Guide, "Policy evaluation logic" and "Condition operators"):

- an explicit Deny in any statement wins; else an Allow is needed (implicit deny);
- Action matches case-insensitively with ``*`` and ``?``; Resource case-sensitively;
  a statement with NotResource applies to every resource except those it lists (IAM
  User Guide, "IAM JSON policy elements: NotResource");
- StringEquals, StringLike, ArnLike and Bool are false when the key is absent; the
  negated StringNotLike is true when the key is absent, else when no value matches; ArnLike
  matches each of an ARN's six ':'-separated parts on its own;
  ForAllValues:* is true when the key is absent or empty (the documented pitfall);
- all conditions of a statement must hold (AND), any value of one condition (OR);
- a policy variable in a condition's value (``${aws:username}``,
  ``${aws:PrincipalTag/approver}``) is the request's value of that key; a value naming a
  key the request lacks matches nothing (IAM User Guide, "IAM policy elements: Variables
  and tags": a missing key's variable makes the condition false).  AWS sets
  ``aws:username`` on every request of an IAM user, and no assumed-role session has one.

It reads the Terraform as the default apply builds it, every environment on
(``var.environments``): a counted block's ``[0]`` and ``[*]`` name its one instance, and
``concat(...)`` of lists and splats is the list of them all.

Its own rules are tested in tests/trust/test_trust_attacks.py (test_the_evaluator_*).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import hcl2

from tests.conftest import hcl_norm

_INDEX = re.compile(r"\[(?:0|\*)\]")  # the one instance of a counted block (phases.py)


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _literal(text: str) -> str:
    """A literal part of an HCL string as python-hcl2 keeps it (raw): its escapes decoded
    (hashicorp/hcl v2 hclsyntax spec.md, "Template Literals" and "String Literals")."""
    text = text.replace("$${", "${").replace("%%{", "%{")
    return re.sub(
        r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)",
        lambda m: chr(int(m.group(1)[1:], 16)) if len(m.group(1)) > 1 else _ESCAPES[m.group(1)],
        text,
    )


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    principals: tuple[tuple[str, tuple[str, ...]], ...] = ()
    not_resources: tuple[str, ...] = ()


@dataclass
class Role:
    label: str
    name: str
    trust: list[Statement]
    policy: list[Statement] = field(default_factory=list)


def _glob(pattern: str, value: str, fold: bool) -> bool:
    if fold:
        pattern, value = pattern.lower(), value.lower()
    # IAM wildcards: '*' any run of characters (including '/' and ':'), '?' one character
    return fnmatchcase(value, pattern.replace("[", "[[]"))


_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _substitute(wanted: tuple[str, ...], ctx: dict[str, Any]) -> tuple[str, ...]:
    """The values with their policy variables replaced from ``ctx``; a value whose variable
    has no value in the request is dropped (it matches nothing)."""
    out = []
    for w in wanted:
        keys = _VARIABLE.findall(w)
        if all(isinstance(ctx.get(k), str) for k in keys):
            out.append(_VARIABLE.sub(lambda m: str(ctx[m.group(1)]), w))
    return tuple(out)


def _condition(op: str, key: str, wanted: tuple[str, ...], ctx: dict[str, Any]) -> bool:
    wanted = _substitute(wanted, ctx)
    set_op = None
    if ":" in op:
        set_op, op = op.split(":", 1)
    present = key in ctx
    got = ctx.get(key)
    values = got if isinstance(got, list) else ([] if got is None else [got])
    if set_op == "ForAllValues":
        return all(any(_match(op, w, str(v)) for w in wanted) for v in values)
    if set_op == "ForAnyValue":
        return any(any(_match(op, w, str(v)) for w in wanted) for v in values)
    if op == "StringNotLike":  # a negated operator: no value matches (absent key: true)
        return not any(_glob(w, str(v), fold=False) for w in wanted for v in values)
    if not present:
        return False
    return any(_match(op, w, str(v)) for w in wanted for v in values)


def _match(op: str, wanted: str, value: str) -> bool:
    if op == "StringEquals":
        return wanted == value
    if op == "StringLike":
        return _glob(wanted, value, fold=False)
    if op == "ArnLike":  # each of the six ':'-separated parts on its own
        w, v = wanted.split(":", 5), value.split(":", 5)
        return len(w) == len(v) == 6 and all(
            _glob(a, b, fold=False) for a, b in zip(w, v, strict=True)
        )
    if op == "Bool":
        return wanted.lower() == value.lower()
    raise NotImplementedError(op)


def applies(st: Statement, action: str, resource: str, ctx: dict[str, Any]) -> bool:
    return (
        any(_glob(a, action, fold=True) for a in st.actions)
        and (
            not any(_glob(r, resource, fold=False) for r in st.not_resources)
            if st.not_resources
            else any(_glob(r, resource, fold=False) for r in st.resources)
        )
        and all(_condition(op, key, vals, ctx) for op, key, vals in st.conditions)
    )


def evaluate(
    statements: list[Statement], action: str, resource: str, ctx: dict[str, Any] | None = None
) -> str:
    """ "Allow", "Deny" (explicit) or "ImplicitDeny"."""
    ctx = ctx or {}
    hits = [st for st in statements if applies(st, action, resource, ctx)]
    if any(st.effect == "Deny" for st in hits):
        return "Deny"
    return "Allow" if hits else "ImplicitDeny"


def _trusts(identifier: str, principal: str) -> bool:
    """A trust policy naming an account's root delegates to every principal of that
    account (whose own policy must then allow sts:AssumeRole)."""
    m = re.fullmatch(r"arn:aws:iam::([0-9]{12}):root", identifier)
    if m and principal.startswith(f"arn:aws:iam::{m.group(1)}:"):
        return True
    return _glob(identifier, principal, fold=False)


class Account:
    """The roles, policies and resource names of one generated Terraform folder."""

    def __init__(self, folder: Path, account: str, variables: dict[str, Any] | None = None) -> None:
        """``variables``: input values, as terraform.tfvars would set them (over each
        variable's default)."""
        self.account = account
        parsed = [hcl_norm(hcl2.loads(p.read_text())) for p in sorted(folder.glob("*.tf"))]
        self.resources: dict[str, dict[str, Any]] = {}
        self.docs: dict[str, Any] = {}
        self.region = "us-east-1"
        self.variables: dict[str, Any] = {}
        for doc in parsed:
            for var in doc.get("variable", []):
                for name, body in var.items():
                    if "default" in body:
                        self.variables[name] = body["default"]
                if "region" in var:
                    self.region = var["region"]["default"]
                for name, body in var.items():
                    if isinstance(body.get("default"), str):
                        self.variables[name] = body["default"]
            for res in doc.get("resource", []):
                for kind, named in res.items():
                    for label, body in named.items():
                        self.resources[f"{kind}.{label}"] = body
            for data in doc.get("data", []):
                for kind, named in data.items():
                    for label, body in named.items():
                        self.docs[f"data.{kind}.{label}"] = body
        self.variables.update(variables or {})
        self.roles: dict[str, Role] = {}
        self.variables.update(variables or {})
        for key, body in self.resources.items():
            if key.startswith("aws_iam_role."):
                label = key.split(".", 1)[1]
                trust = self._doc(body["assume_role_policy"])
                self.roles[label] = Role(label, body["name"], trust)
        for key, body in self.resources.items():
            if key.startswith("aws_iam_role_policy."):
                role = self._ref(body["role"]).split(".")[1]
                self.roles[role].policy += self._doc(body["policy"])

    # -- reference resolution ------------------------------------------------------------
    def arn(self, key: str) -> str:
        """ARN of ``<type>.<label>``, as AWS would name it."""
        kind, label = key.split(".", 1)
        body = self.resources[key]
        r, a = self.region, self.account
        name = body.get("name", label)
        return {
            "aws_ecr_repository": f"arn:aws:ecr:{r}:{a}:repository/{name}",
            "aws_s3_bucket": f"arn:aws:s3:::{body.get('bucket')}",
            "aws_kms_key": f"arn:aws:kms:{r}:{a}:key/{label}",
            "aws_dynamodb_table": f"arn:aws:dynamodb:{r}:{a}:table/{name}",
            "aws_secretsmanager_secret": f"arn:aws:secretsmanager:{r}:{a}:secret:{name}-AbCdEf",
            "aws_cloudwatch_log_group": f"arn:aws:logs:{r}:{a}:log-group:{name}",
            "aws_codebuild_project": f"arn:aws:codebuild:{r}:{a}:project/{name}",
            "aws_sns_topic": f"arn:aws:sns:{r}:{a}:{name}",
            "aws_iam_role": f"arn:aws:iam::{a}:role/{name}",
            "aws_codestarconnections_connection": f"arn:aws:codestar-connections:{r}:{a}:"
            f"connection/{label}",
            "aws_codepipeline": f"arn:aws:codepipeline:{r}:{a}:{name}",
            "aws_iam_openid_connect_provider": f"arn:aws:iam::{a}:oidc-provider/"
            "token.actions.githubusercontent.com",
        }[kind]

    def _attr(self, ref: str) -> str:
        parts = _INDEX.sub("", ref).split(".")
        if parts[0] == "data":
            if parts[1] == "aws_iam_openid_connect_provider":
                return (
                    f"arn:aws:iam::{self.account}:oidc-provider/token.actions.githubusercontent.com"
                )
            raise KeyError(ref)
        if parts[0] == "var":  # an input variable: its value, else a principal it names
            value = self.variables.get(parts[1])
            if isinstance(value, str):
                return value
            return f"arn:aws:iam::{self.account}:role/var-{parts[1]}"
        key, attr = ".".join(parts[:2]), parts[2]
        body = self.resources[key]
        if attr == "arn":
            return self.arn(key)
        if attr in ("bucket", "id") and "bucket" in body:
            return str(body["bucket"])
        if attr in ("name", "id"):
            return str(body.get("name", parts[1]))
        raise KeyError(ref)

    @staticmethod
    def _ref(text: str) -> str:
        m = re.fullmatch(r"\$\{([^}]*)\}", text)
        assert m, text
        return _INDEX.sub("", m.group(1))

    def _list(self, value: Any) -> list[str]:
        """A list attribute: literal, or ``concat([...], x[*].attr, ...)`` (phases.py)."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        m = re.fullmatch(r"\$\{concat\((.*)\)\}", value)
        assert m, value
        out = []
        for arg in re.findall(r"\[[^\]]*\]|[^,\s\[][^,]*", m.group(1)):
            if arg.startswith("["):
                out += [self._attr(x.strip()) for x in arg[1:-1].split(",") if x.strip()]
            else:
                out.append(self._attr(arg.strip()))
        return out

    def resolve(self, text: str) -> str:
        """A string as Terraform builds it: its interpolations resolved, its literal parts
        unescaped (``$${`` and ``\\u0024{`` are a literal ``${``: an IAM policy variable)."""
        out, pos = [], 0
        for m in re.finditer(r"(?<!\$)\$\{([^}]*)\}", text):
            out += [_literal(text[pos : m.start()]), self._attr(m.group(1))]
            pos = m.end()
        return "".join([*out, _literal(text[pos:])])

    def _values(self, values: Any) -> tuple[str, ...]:
        """A condition's values: a list, or a list variable (``values = var.x``), which
        without a value matches nothing (Terraform would not plan without one)."""
        if isinstance(values, str):
            value = self.variables.get(self._ref(values).removeprefix("var."), [])
            assert isinstance(value, list), values
            return tuple(value)
        return tuple(self.resolve(v) for v in values)

    def _doc(self, ref: str) -> list[Statement]:
        label = self._ref(ref).removesuffix(".json")
        out = []
        for st in self.docs[label].get("statement", []):
            out.append(
                Statement(
                    effect=st.get("effect", "Allow"),
                    actions=tuple(st["actions"]),
                    resources=tuple(self._list(st.get("resources", ["*"]))),
                    # NotResource: the statement applies to every resource but these
                    not_resources=tuple(self._list(st.get("not_resources", []))),
                    conditions=tuple(
                        (c["test"], self.resolve(c["variable"]), self._values(c["values"]))
                        for c in st.get("condition", [])
                    ),
                    principals=tuple(
                        (p["type"], tuple(self.resolve(i) for i in p["identifiers"]))
                        for p in st.get("principals", [])
                    ),
                )
            )
        return out

    # -- questions -----------------------------------------------------------------------
    def can(self, role: str, action: str, resource: str, **ctx: Any) -> bool:
        return evaluate(self.roles[role].policy, action, resource, ctx) == "Allow"

    def decision(self, role: str, action: str, resource: str, **ctx: Any) -> str:
        return evaluate(self.roles[role].policy, action, resource, ctx)

    def may_assume(self, role: str, principal: tuple[str, str], **ctx: Any) -> bool:
        """Does the trust policy let ``principal`` (type, identifier) assume ``role``?"""
        kind, ident = principal
        if kind == "AWS":  # AWS sets it on every request of an IAM principal
            ctx.setdefault("aws:PrincipalArn", ident)
            user = re.fullmatch(r"arn:aws:iam::[0-9]{12}:user/(?:.*/)?([^/]+)", ident)
            if user:  # and aws:username on an IAM user's (none on a role session's)
                ctx.setdefault("aws:username", user.group(1))
        for st in self.roles[role].trust:
            if st.effect != "Allow":
                continue
            if not any(
                t == kind and any(_trusts(i, ident) for i in ids) for t, ids in st.principals
            ):
                continue
            if all(_condition(op, key, vals, ctx) for op, key, vals in st.conditions):
                return True
        return False


def github_subject(
    repo: str,
    workflow: str,
    branch: str,
    environment: str | None = None,
    *,
    called_at: str | None = None,
    template: bool = True,
) -> str:
    """The OIDC ``sub`` GitHub issues to a job of ``.github/workflows/<workflow>`` in a run on
    ``refs/heads/<branch>``, in GitHub environment ``environment`` (None: none, and the
    context is the ref), once the repository's subject template is
    ``["repo", "context", "ref", "job_workflow_ref"]`` (docs.github.com, "OpenID Connect
    reference", Customizing the subject claims: the claims in order, ``key:value`` joined
    by ':', ``context`` as in the default template, e.g. ``repo:ORG/REPO:environment:ENV:
    job_workflow_ref:REUSABLE-WORKFLOW-PATH``).  ``ref`` is the run's, so the caller's for
    a reusable workflow's jobs.  A workflow called with ``$/`` is from the running commit
    (changelog 2026-07-30): here its ref is the caller's branch; ``called_at``: the ref a
    caller named instead (``<repo>/.github/workflows/<file>@<branch>``), a 40-hex
    commit, or ``*``: the pattern a generated trust names (any ref).
    ``template=False``: GitHub's default format, the template not set
    (``repo:ORG/REPO:environment:ENV``)."""
    context = f"environment:{environment}" if environment else f"ref:refs/heads/{branch}"
    if not template:
        return f"repo:{repo}:{context}"
    at = called_at or branch
    if at != "*" and not (len(at) == 40 and all(c in "0123456789abcdef" for c in at)):
        at = f"refs/heads/{at}"
    called = f"{repo}/.github/workflows/{workflow}@{at}"
    return f"repo:{repo}:{context}:ref:refs/heads/{branch}:job_workflow_ref:{called}"

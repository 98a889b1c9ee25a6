"""GitHub OIDC trust: which workflow runs may assume a role.  Every role of GitHub
delivery trusts the jobs of one workflow file, in one GitHub environment where it has
one, in runs on the branches allowed (``workflow_trust``): never a branch ref alone,
which whoever may push creates, nor an environment alone, which GitHub creates
unprotected for any workflow that names it (issue 28 trace).  The subject names the
file and the run's branch only once the repository's OIDC subject template
(``SUBJECT_TEMPLATE``) is set; until then no role can be assumed.  The branch is the
run's (``ref``), the caller's for a reusable workflow's jobs, so a workflow on another
branch calling the trusted file is refused.  The rulesets still cover the nested names
IAM's ``*`` would match (``nested_cover``); ``iam_alternatives`` says how a branch
pattern would read in IAM:

GitHub reads a branch pattern's ``*`` within one path segment (Actions filter patterns,
"Filter pattern cheat sheet"; rulesets and deployment branch policies use File.fnmatch
with File::FNM_PATHNAME: ``qa/*`` does not match ``qa/foo/bar``, docs.github.com,
"Creating rulesets for a repository", Using fnmatch syntax).  IAM's StringLike ``*``
matches any run of characters, '/' included (IAM User Guide, "Condition operators",
String condition operators), so ``ref:refs/heads/release/*`` copied unchanged would let
a workflow on ``release/a/b`` (a name no ruleset for ``release/*`` protects) assume the
release role.

Each pattern becomes StringLike alternatives, each with a StringNotLike of the names
where one of its ``*`` spans a '/': a name GitHub's pattern matches has exactly the
pattern's literal slashes, so it never matches a variant; a name that IAM's ``*`` matches
across a '/' always does.  One statement per alternative (a condition's values are ORed,
and its keys ANDed: the exclusions of one pattern must not refuse another's names).
Exact for literals, ``*``, ``**`` alone, ``[...]`` and ``?``; conservative (it refuses a
few names GitHub would admit, never admits one it would refuse) where a pattern mixes
``**`` with ``*``, and for ``c+``, read as exactly one ``c``.
"""

from __future__ import annotations

import json
import string
from typing import Any

from ...ir import IR
from ...serialize.hcl import Block, Ref
from .blocks import aws_constants, policy_doc, resource

STAR, DSTAR = object(), object()
# the characters a branch name may hold besides '/' (git check-ref-format refuses
# controls, space, ~ ^ : ? * [ and \)
_NAME_CHARS = sorted(
    set(string.ascii_letters + string.digits + string.punctuation) - set("/~^:?*[\\")
)

Token = object  # STAR, DSTAR or one literal character (a str)


def _class(body: str) -> list[str]:
    """The characters of ``[body]`` a branch name can hold."""
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    chars: set[str] = set()
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            chars.update(chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return [c for c in _NAME_CHARS if (c in chars) != negate]


def _sequences(glob: str) -> list[list[Token]]:
    """The token sequences a GitHub filter pattern stands for (``?`` and ``[...]``
    expanded), as targets/common.py's glob_to_regex reads the pattern."""
    # each element: a list of alternatives, each a list of tokens
    elements: list[list[list[Token]]] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            elements.append([[DSTAR]])
            i += 2
            continue
        if c == "*":
            elements.append([[STAR]])
        elif c == "?" and elements:  # the previous element, or nothing
            elements[-1] = elements[-1] + [[]]
        elif c == "+" and elements:  # one or more: IAM cannot say "more"; exactly one
            pass
        elif c == "[" and glob.find("]", i + 1) != -1:
            end = glob.find("]", i + 1)
            elements.append([[ch] for ch in _class(glob[i + 1 : end])])
            i = end
        else:
            elements.append([[c]])
        i += 1
    out: list[list[Token]] = [[]]
    for alternatives in elements:
        out = [seq + alt for seq in out for alt in alternatives]
    return out


def _text(seq: list[Token]) -> str:
    return "".join("*" if t in (STAR, DSTAR) else str(t) for t in seq)


def iam_alternatives(glob: str) -> list[tuple[str, list[str]]]:
    """(StringLike value, StringNotLike values) pairs whose union is the names ``glob``
    matches in GitHub (see the module docstring for where it is conservative)."""
    out: list[tuple[str, list[str]]] = []
    for seq in _sequences(glob):
        spans = [
            _text(seq[:k]) + "*/*" + _text(seq[k + 1 :]) for k, t in enumerate(seq) if t is STAR
        ]
        alt = (_text(seq), spans)
        if alt not in out:
            out.append(alt)
    return out


def nested_cover(glob: str) -> list[str]:
    """Ruleset patterns (fnmatch, FNM_PATHNAME) for ``glob`` and every name IAM's ``*``
    could stretch it to across a '/': ``release/*`` and ``release/*/**/*`` (``**/``
    matches any number of folders, docs.github.com "Creating rulesets for a repository").
    """
    if "*" not in glob:
        return [glob]
    parts, i = [], 0
    while i < len(glob):
        if glob[i] == "*":
            while i < len(glob) and glob[i] == "*":
                i += 1
            parts.append("*/**/*")
        else:
            parts.append(glob[i])
            i += 1
    return [glob, "".join(parts)]


# GitHub's repository OIDC subject template (REST: PUT
# /repos/{owner}/{repo}/actions/oidc/customization/sub; docs.github.com "OpenID Connect
# reference", "Customizing the subject claims": the sub is the listed claims in order,
# each as ``<key>:<value>``, joined by ':', where ``context`` stands for the default
# template's context: ``environment:<env>`` for a job with an environment, else
# ``ref:<ref>``; Example: Requiring a reusable workflow and other claims).  The sub reads
#   repo:<owner>/<repo>:environment:<env>:ref:refs/heads/<branch>:job_workflow_ref:
#   <owner>/<repo>/.github/workflows/<file>@<ref of the file>    (one line, no space)
# for a job with an environment, and with ``ref:<ref>`` as its context for one without
# (the ref then appears twice).  ``ref`` is "the git ref that triggered the workflow
# run" (same page, claims table): the caller's branch, for the jobs of a reusable
# workflow too ("Using OpenID Connect with reusable workflows": the other claims
# describe the caller).  Without it the sub of a job with an environment names no branch
# of the run, only the called file at the ref the caller names: a feature branch's
# workflow calling ``<repo>/.github/workflows/deploy.yml@main`` in ``production``
# presented production's subject for its own commit (attacker trace of issue 28).
# ``job_workflow_ref`` is, "for jobs using a reusable workflow, the ref path to the
# reusable workflow": the trust names its file, never its ref (``@*``): GitHub documents
# no value for a ``$/`` call ("resolves to your workflow's own repository at the exact
# commit that is running", changelog 2026-07-30), which may be a commit SHA, and the
# branch is bound by ``ref``: a run on a branch runs that branch's workflow files (a
# push, a dispatch on it, a schedule or pull_request_target on the default branch), so
# only that branch's reviewed code decides which file it calls at which ref.  AWS
# conditions a GitHub token on ``aud`` and ``sub`` alone, so the template is how the
# trust can name either.  Without it the sub keeps GitHub's default form, which no
# generated trust admits (fail closed).  Values ':' would break are escaped by GitHub as
# %3A (same page); a branch name never holds ':' (git check-ref-format).
SUBJECT_TEMPLATE: dict[str, Any] = {
    "use_default": False,
    "include_claim_keys": ["repo", "context", "ref", "job_workflow_ref"],
}


def subject_repo(ir: IR) -> str:
    """The sub's first claim: ``repo:<owner>/<name>``, or with ``source.repository_ids``
    the immutable form ``repo:<owner>@<owner id>/<name>@<repository id>`` that GitHub
    issues for a repository created, renamed or transferred on or after 2026-07-15, or
    opted in (github/docs#45221, "Immutable subject claims": "The immutable ID is appended
    to each name with an ``@`` delimiter"; the changelog of 2026-04-23 first showed a
    hyphen, which GitHub's docs reverted).  A custom template's ``repo`` claim takes it
    too, and ``job_workflow_ref`` keeps the names (a token quoted in
    Azure/accelerator-bootstrap-modules#138: ``repo:<owner>@<id>/<name>@<id>:environment:
    ...:job_workflow_ref:<owner>/<name>/.github/workflows/...``).  Only one form is
    trusted: the name form is what a recycled name would present.  The customization's
    ``sub_claim_prefix`` says which one GitHub issues (explain prints the command)."""
    if ir.repository_ids is None:
        return f"repo:{ir.repository}"
    owner, name = ir.repository.split("/")
    owner_id, repo_id = ir.repository_ids
    return f"repo:{owner}@{owner_id}/{name}@{repo_id}"


def subject_template_command(ir: IR) -> str:
    """The command that sets the repository's OIDC subject template (its JSON first)."""
    body = json.dumps(SUBJECT_TEMPLATE, separators=(",", ":"))
    return (
        f"echo '{body}' | gh api -X PUT repos/{ir.repository}/actions/oidc/customization/sub "
        "--input -"
    )


def _variants(seq: list[Token]) -> list[list[Token]]:
    """``seq`` with one of its wildcards stretched across a '/' (a ``*`` only: GitHub's
    ``**`` spans folders) or across a ':' (no branch name holds one, so a legitimate
    subject has exactly the template's colons, and a wildcard spanning one is a forgery
    reaching into the next claim)."""
    out: list[list[Token]] = []
    for k, t in enumerate(seq):
        if t is STAR:
            out.append([*seq[:k], STAR, "/", STAR, *seq[k + 1 :]])
        if t is STAR or t is DSTAR:
            out.append([*seq[:k], STAR, ":", STAR, *seq[k + 1 :]])
    return out


def workflow_subjects(
    ir: IR, workflow: str, branches: tuple[str, ...] | list[str], environment: str | None
) -> tuple[list[str], list[list[str]]]:
    """The subjects (StringLike) of the jobs of ``.github/workflows/<workflow>`` in runs
    on the branches ``branches`` match (GitHub patterns), in GitHub environment
    ``environment`` (None: a job with no environment, whose context is its ref), and per
    subject the forgeries to refuse (StringNotLike): ``iam_alternatives`` read on the
    whole subject.  The file is named at any ref (``@*``, see SUBJECT_TEMPLATE): the
    run's branch is the ``ref`` claim."""
    repo = ir.repository
    ref = "refs/heads/"
    context = [f"environment:{environment}"] if environment else ["ref:" + ref, None]
    parts: list[str | None] = [
        f"{subject_repo(ir)}:",
        *context,
        f":ref:{ref}",
        None,
        f":job_workflow_ref:{repo}/.github/workflows/{workflow}@*",
    ]

    def text(seqs: list[list[Token]]) -> str:
        it = iter(seqs)
        return "".join(_text(next(it)) if p is None else p for p in parts)

    holes = parts.count(None)
    subjects: list[str] = []
    spans: list[list[str]] = []
    for glob in branches:
        for seq in _sequences(glob):
            like = text([seq] * holes)
            if like in subjects:
                continue
            not_like: list[str] = []
            for i in range(holes):
                for v in _variants(seq):
                    forged = text([v if j == i else seq for j in range(holes)])
                    if forged not in not_like:
                        not_like.append(forged)
            subjects.append(like)
            spans.append(not_like)
    return subjects, spans


def workflow_trust(
    ir: IR,
    label: str,
    provider: Ref,
    workflow: str,
    branches: tuple[str, ...] | list[str],
    environment: str | None,
) -> Block:
    """Trust for the jobs of one workflow file on the given branches (and environment)."""
    subjects, spans = workflow_subjects(ir, workflow, branches, environment)
    return github_trust(label, provider, subjects, spans)


def provider_ref(ir: IR) -> Ref:
    """The GitHub OIDC provider's ARN: the one iam.tf creates, or the account's own."""
    if ir.github_oidc_provider == "create":
        return Ref("aws_iam_openid_connect_provider.github.arn")
    return Ref("data.aws_iam_openid_connect_provider.github.arn")


def oidc_provider(ir: IR) -> tuple[Block, Ref]:
    oidc = aws_constants()["github_oidc_host"]
    if ir.github_oidc_provider == "create":
        gh = resource("aws_iam_openid_connect_provider", "github")
        gh.attr("url", f"https://{oidc}")
        gh.attr("client_id_list", ["sts.amazonaws.com"])
        gh.attr("thumbprint_list", list(aws_constants()["github_thumbprints"]))
        return gh, provider_ref(ir)
    # an account holds one provider per URL: use the one that exists
    gh = Block("data", ("aws_iam_openid_connect_provider", "github"))
    gh.comment("aws.github_oidc_provider: existing (the account has one already)")
    gh.attr("url", f"https://{oidc}")
    return gh, provider_ref(ir)


def github_trust(
    label: str, provider: Ref, subjects: list[str], spans: list[list[str]] | None = None
) -> Block:
    """Trust for OIDC subjects: ``subjects`` in one statement, or (``spans`` given) one
    statement per subject, each refusing its own ``spans`` (StringNotLike)."""
    oidc = aws_constants()["github_oidc_host"]
    aud = ("StringEquals", f"{oidc}:aud", ["sts.amazonaws.com"])
    groups: list[tuple[list[str], list[str]]]
    if spans is None:
        groups = [(subjects, [])]
    else:
        plain = [s for s, n in zip(subjects, spans, strict=True) if not n]
        groups = ([(plain, [])] if plain else []) + [
            ([s], n) for s, n in zip(subjects, spans, strict=True) if n
        ]
    statements: list[dict[str, Any]] = []
    for like, not_like in groups:
        conditions = [aud, ("StringLike", f"{oidc}:sub", like)]
        if not_like:
            conditions.append(("StringNotLike", f"{oidc}:sub", not_like))
        statements.append(
            {
                "actions": ["sts:AssumeRoleWithWebIdentity"],
                "principals": [("Federated", [provider])],
                "conditions": conditions,
            }
        )
    return policy_doc(f"{label}_assume", statements)

"""Every diagnostic's identity: a stable code, a name, a one-line summary and a fix.

Codes are grouped like ruff's: ``PC1xx`` the input (the file, its syntax and schema,
the command line),
``PC2xx`` references and rules across fields, ``PC3xx`` what a target cannot
express (its limits), ``PC4xx`` the external checkers ``lint`` runs, ``PC5xx``
the generated tree (``check``, ``diff``) and the run itself.  A code never changes
meaning; a retired code (:data:`RETIRED`) is never reused.  SARIF's ``ruleId`` is the
code, its ``helpUri`` the rule's anchor on the generated rules page
(``pipecompile rules > docs/rules.md``).

Every diagnostic is given its code where it is made (``doc.error("PC107", ...)``,
``Finding(..., code="PC302")``, ``Invalid("PC206", ...)`` in a model validator); its
wording never decides it, and :class:`~pipecompile.errors.Diagnostic` refuses a code
this table does not register (tests/frontend/test_rules.py checks every code the
source names, and that the test corpus meets no retired catch-all).
Warnings may be suppressed in pipeline.yaml with ``# pipecompile: ignore[PC301]``
on the reported line; errors cannot be (nothing valid could be generated).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCS_URL = "https://github.com/pipecompile/pipecompile/blob/main/docs/rules.md"


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    name: str  # kebab-case, as ruff names its rules
    summary: str  # one line: what the rule is about
    fix: str  # what to do about it

    @property
    def anchor(self) -> str:
        return f"{DOCS_URL}#{self.code.lower()}-{self.name}"


RULES: tuple[Rule, ...] = (
    # PC1xx: the file, its YAML and the schema
    Rule(
        "PC101",
        "unreadable-file",
        "The pipeline file (or pipecompile.lock) cannot be read as a UTF-8 text file.",
        "Check the path; save the file as UTF-8 without a byte-order mark, below 1 MiB.",
    ),
    Rule(
        "PC102",
        "yaml-syntax",
        "The file is not valid YAML.",
        "Fix the indentation or quoting at the reported line (spaces, not tabs).",
    ),
    Rule(
        "PC103",
        "yaml-feature-refused",
        "A YAML feature the language refuses: tags, aliases, merge keys, duplicate or "
        "non-plain keys, deep nesting.",
        "Write the value out in plain YAML (pipeline files are data, never code).",
    ),
    Rule(
        "PC104",
        "unknown-key",
        "A key the language does not know (often a typo).",
        "Use the key the hint suggests, or remove it.",
    ),
    Rule(
        "PC105",
        "missing-key",
        "A required key is missing, or the file is empty.",
        "Add the key; `pipecompile init` writes a complete starter file.",
    ),
    Rule(
        "PC106",
        "wrong-type",
        "A value has the wrong type (a number where a string belongs, a list for a "
        "mapping, a string for a boolean).",
        "Write the value as the hint shows (quote numbers meant as strings; "
        "true/false for booleans).",
    ),
    Rule(
        "PC107",
        "invalid-value",
        "A value outside what the field accepts: a pattern, a choice, a range, a length.",
        "Use one of the values the message names.",
    ),
    Rule(
        "PC109",
        "unused-ignore",
        "A `# pipecompile: ignore[...]` comment that silences no warning on its line "
        "(errors cannot be ignored).",
        "Remove the comment, or move it to the line the warning is reported at.",
    ),
    Rule(
        "PC110",
        "usage-error",
        "A mistake on the command line or in its environment: an option, a conflicting "
        "pair of options, no pipeline.yaml found, a path that cannot be used.",
        "Follow the message (`pipecompile COMMAND --help` lists the options).",
    ),
    Rule(
        "PC108",
        "invalid-lock",
        "pipecompile.lock is not a valid lock file.",
        "Fix the entry the message names; `pipecompile pins` shows what is pinned.",
    ),
    # PC2xx: references and rules across fields
    Rule(
        "PC201",
        "unknown-reference",
        "A name that refers to something the pipeline does not define (an environment, "
        "a strategy, a service).",
        "Use a defined name (the message lists them), or define it.",
    ),
    Rule(
        "PC202",
        "duplicate",
        "Two things claim what must be unique (an image repository, a generated path).",
        "Give each its own value.",
    ),
    Rule(
        "PC203",
        "path-outside-root",
        "A path or output folder that leaves the pipeline's folder, goes through a "
        "symlink, or is a folder pipecompile may not own.",
        "Use a relative folder inside the folder holding pipeline.yaml.",
    ),
    Rule(
        "PC204",
        "strategy-settings",
        "Strategy settings that do not fit the strategy (canary steps backwards, a "
        "blue-green setting on a canary, parameters on a built-in).",
        "Keep each strategy's own settings; see the language reference.",
    ),
    Rule(
        "PC205",
        "environment-settings",
        "An environment lacks what another field needs from it (a URL to scan, a "
        "namespace that fits, branches).",
        "Set the field the message names on that environment.",
    ),
    Rule(
        "PC206",
        "schedule",
        "A schedule that is not 'daily', 'weekly' or a valid 5-field cron.",
        "Write a 5-field cron such as '0 3 * * 1'.",
    ),
    Rule(
        "PC207",
        "secret-prefix",
        "An environment's secret prefix would let its services' secret stores read a "
        "deploy credential.",
        "Choose a prefix under the environment's own services folder, as the message says.",
    ),
    Rule(
        "PC208",
        "shared-gitops-repository",
        "An approval environment reads a GitOps repository another environment's deployer "
        "writes: that deployer's credential can rewrite its folder (its workloads' command, "
        "service account, environment, volumes and analysis, or an older signed digest) and "
        "Argo CD syncs it without the approval.",
        "Give the approval environment its own repository: "
        "environments.<env>.gitops.repository (the warning may be ignored where one "
        "repository is accepted, as in the reference pipeline).",
    ),
    Rule(
        "PC209",
        "smoke-judges-nothing",
        "rollback.smoke_path requests a path whose requests no analysis measures (no "
        "threshold is set, or prometheus_metrics.exclude takes the path out).",
        "Set max_error_rate or max_p90_latency, and request a path users request.",
    ),
    Rule(
        "PC210",
        "plugins-without-builtins",
        "outputs: names plugins but no built-in target: every built-in output is off, and "
        "build removes the files they generated.",
        "Name the built-in outputs to keep beside plugins: (the message lists the defaults), "
        "or ignore the warning where only the plugins are wanted.",
    ),
    Rule(
        "PC211",
        "backend-settings",
        "Terraform state backend settings that do not fit together (an S3 backend without "
        "its bucket, a lock table without lock: dynamodb, S3 settings on a local backend).",
        "Give the setting the message names, or remove the one that does not apply.",
    ),
    Rule(
        "PC212",
        "hotfix-environment",
        "hotfixes.environment names the production environment: hotfix branches are "
        "verified in an environment before production.",
        "Name an environment before production in promotion order, or leave the key out.",
    ),
    Rule(
        "PC213",
        "reserved-environment-name",
        "An environment named like a GitHub environment pipecompile generates (the DAST "
        "job's, an approval's): the two would share secrets and deployment branch policy.",
        "Rename the environment.",
    ),
    Rule(
        "PC214",
        "approvers-without-approval",
        "An environment lists approvers or approver_principals but has no approval: nobody "
        "is asked, so they would never be notified or approve anything.",
        "Set approval: true on the environment, or remove its approvers.",
    ),
    # PC3xx: what a target cannot express
    Rule(
        "PC301",
        "gitops-required",
        "An enabled output deploys through the GitOps repository, but none is set.",
        "Set gitops.repository, or turn those outputs off.",
    ),
    # (before PC302: "delivery is github-actions: no CodePipeline runs ..." is PC304)
    Rule(
        "PC304",
        "delivery-output",
        "The outputs do not match the delivery: its deliverer is off, or an output "
        "only the other delivery uses is on (or a setting only it reads is given, such as "
        "a deploy_network without CodePipeline).",
        "Turn the deliverer's output on, remove the setting, or change delivery.",
    ),
    Rule(
        "PC302",
        "codepipeline-limit",
        "AWS CodePipeline cannot express this (trigger patterns, name length).",
        "Reduce the patterns or shorten the name, as the message says.",
    ),
    Rule(
        "PC303",
        "actions-expression",
        "A value GitHub Actions would evaluate as an expression (`${{`).",
        "Read values from environment variables instead.",
    ),
    Rule(
        "PC305",
        "codebuild-compute",
        "No CodeBuild compute type has exactly the vCPU and memory asked for; the next "
        "larger one is used.",
        "Ask for a size CodeBuild offers (2/4, 4/8, 8/16, 36/72, 72/144 vCPU/GiB).",
    ),
    Rule(
        "PC306",
        "checker-policy",
        "A checker's check the generated files skip on purpose, and why.",
        "Nothing to do unless the reason no longer holds.",
    ),
    Rule(
        "PC307",
        "local-needs-chart",
        "The local target deploys the generated chart, but the helm output is off.",
        "Turn the helm output on, or set outputs.local: false.",
    ),
    Rule(
        "PC308",
        "runtime-unavailable",
        "A runtime version the build image does not offer (CodeBuild's install phase fails on it).",
        "Choose one of the versions the message lists.",
    ),
    Rule(
        "PC309",
        "unjudged-canary-step",
        "A canary step whose weight the rollback analysis never measures: the traffic "
        "moves on (or the rollout completes) before its first measurement.",
        "Pause the step until a measurement is taken (the message says how long the "
        "analysis waits for its first one).",
    ),
    Rule(
        "PC310",
        "plain-http-internet",
        "An internet-facing environment without TLS (no https url, no "
        "exposure.certificate_arn): its ALB serves the services on plain HTTP 80.",
        "Give the environment an https url or exposure.certificate_arn (HTTPS on 443, 80 "
        "redirects to it), or make it exposure.scheme: internal.",
    ),
    Rule(
        "PC311",
        "gitops-scheme",
        "An environment's GitOps repository uses another URL scheme (https or ssh) than "
        "gitops.repository: the deployers read one kind of credential.",
        "Write both repositories with the same scheme.",
    ),
    Rule(
        "PC312",
        "plugin-finding",
        "An installed target (a plugin, the pipecompile.targets entry points) cannot "
        "express this; the message is the plugin's own.",
        "Follow the message, or turn that plugin off (outputs.plugins).",
    ),
    # PC4xx: the external checkers (lint)
    Rule(
        "PC401",
        "actionlint",
        "actionlint (with shellcheck) reports a problem in a generated workflow.",
        "Fix the pipeline field the finding maps to; report a bug if it is generated code.",
    ),
    Rule(
        "PC402",
        "zizmor",
        "zizmor reports a security finding in a generated workflow.",
        "Fix the pipeline field the finding maps to, or accept the policy choice it notes.",
    ),
    Rule(
        "PC403",
        "checker-missing",
        "A checker lint runs is not installed.",
        "Install pipecompile's lint extra: pip install 'pipecompile[lint]'.",
    ),
    # PC5xx: the generated tree
    Rule(
        "PC501",
        "generated-file-drift",
        "A generated file differs from what the pipeline generates (or is missing, or stale).",
        "Run pipecompile build and commit the result.",
    ),
    Rule(
        "PC502",
        "untrusted-state",
        "A state file (.pipecompile/manifest.json or journal.json) is malformed, has "
        "merge-conflict markers pipecompile cannot resolve, or is not a regular file.",
        "Do what the message's 'to recover' says: usually delete the file and run "
        "pipecompile build, which adopts the generated files by their headers.",
    ),
    Rule(
        "PC503",
        "io-error",
        "A file could not be read or written (permissions, a full disk, a link or a file "
        "in the way); the manifest is only updated after every write succeeded.",
        "Fix what the message names and run the command again; build finishes the job.",
    ),
    Rule(
        "PC504",
        "internal-error",
        "pipecompile itself failed (exit 3): a bug, not a mistake in the pipeline file.",
        "Report it with the command you ran; --debug prints the traceback.",
    ),
)

BY_CODE = {rule.code: rule for rule in RULES}

# Codes no longer given, never to be reused: the catch-alls of the time a message's
# wording chose its code (every diagnostic now names its own rule where it is made).
RETIRED = {
    "PC199": "invalid-input: any other mistake in the input (now each has its own code)",
    "PC399": "target-limit: anything else a target cannot express (now each has its own)",
}


IGNORE = re.compile(r"(?:^|\s)#\s*pipecompile:\s*ignore\[([A-Za-z0-9, ]+)\]\s*$")


def suppressions(text: str) -> dict[int, frozenset[str]]:
    """``{line: codes}`` of the ``# pipecompile: ignore[PC301, PC305]`` comments."""
    found: dict[int, frozenset[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if "pipecompile:" in line and (m := IGNORE.search(line)):
            # codes are written as they appear in the output (PC305), but pc305 means the same
            found[number] = frozenset(c.strip().upper() for c in m.group(1).split(",") if c.strip())
    return found


def markdown() -> str:
    """The rules page (docs/rules.md), generated: ``pipecompile rules``."""
    out = [
        "# pipecompile rules",
        "",
        "<!-- Generated by `pipecompile rules`; do not edit (tests/test_rules.py). -->",
        "",
        "Every diagnostic pipecompile reports carries one of these codes: in the text",
        "output (`pipeline.yaml:12:3: PC107 services.web.port: ...`), in `--format json`",
        '(`"code"`), as SARIF `ruleId` and in `--format github` annotations.',
        "A warning can be silenced on its line of pipeline.yaml with",
        "`# pipecompile: ignore[PC305]`; errors cannot be ignored.",
        "",
        "| code | name | summary |",
        "|---|---|---|",
    ]
    ordered = sorted(RULES, key=lambda r: r.code)
    out += [
        f"| [{r.code}]({r.anchor[len(DOCS_URL) :]}) | {r.name} | {r.summary} |" for r in ordered
    ]
    for r in ordered:
        out += ["", f"## {r.code} {r.name}", "", r.summary, "", f"Fix: {r.fix}"]
    out += ["", "## Retired codes", "", "Never reused:", ""]
    out += [f"- {code} {why}" for code, why in sorted(RETIRED.items())]
    return "\n".join(out) + "\n"

"""Issue 28, trace finding 4, played: the attacker holds the development GitOps
credential (a deploy key cannot be limited to a folder) and pushes a rewrite of
production's folder to every repository that credential can write.  Who holds which
credential is the IAM evaluated from the generated Terraform (tests/iam_eval.py); what
production runs is what its generated Argo CD Application reads (repoURL, targetRevision,
path) from real bare repositories, one per GitOps URL the pipeline names.

With per-tier repositories (production's own, whose credential only production's deploy
role reads) the rewrite lands where production never reads; with the reference's single
repository it lands in production's folder, and PC208 and explain --trust say so."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pipecompile.compiler import compile_bytes
from pipecompile.insight.trust import trust_report
from pipecompile.ir import IR
from pipecompile.targets.registry import render_all
from tests.conftest import ROOT, git
from tests.iam_eval import Account

REFERENCE = (ROOT / "samples/ecommerce/pipeline.yaml").read_text()
PROD_REPO = "git@github.com:example/ecommerce-production.git"
HOSTILE = "image:\n  repository: evil.example/backdoor\n  tag: latest\n"


def _per_tier() -> str:
    """The reference with production on a repository of its own (as storefront does)."""
    old = "    cluster: https://kubernetes.default.svc\n    url: https://shop.example.com\n"
    assert old in REFERENCE
    return REFERENCE.replace(old, old + f"    gitops:\n      repository: {PROD_REPO}\n")


def _materialise(text: str, tmp: Path) -> tuple[IR, Path]:
    """The pipeline's generated files, written under tmp as `build` would."""
    ir = compile_bytes("pipeline.yaml", text.encode())
    for path, (_, body) in render_all(ir).items():
        dest = tmp / "out" / str(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(body)
    return ir, tmp / "out"


def _remotes(ir: IR, tmp: Path) -> dict[str, Path]:
    """A bare repository with one commit per GitOps URL the pipeline names."""
    remotes: dict[str, Path] = {}
    for i, url in enumerate(sorted({e.gitops_repository for e in ir.environments})):
        seed = tmp / f"seed{i}"
        seed.mkdir()
        (seed / "README").write_text("gitops\n")
        git(seed, "init", "-q", "-b", "main")
        git(seed, "add", ".")
        git(seed, "commit", "-q", "-m", "seed")
        remotes[url] = tmp / f"gitops{i}.git"
        git(tmp, "clone", "-q", "--bare", str(seed), str(remotes[url]))
    return remotes


def _credential_holders(ir: IR, acct: Account, env: str) -> set[str]:
    """The roles that can read ``env``'s GitOps credential (IAM from the Terraform)."""
    label = "aws_secretsmanager_secret." + re.sub(r"\W", "_", f"gitops_deploy_{env}")
    secret = acct.arn(label)
    return {r for r in acct.roles if acct.can(r, "secretsmanager:GetSecretValue", secret)}


def _attack(ir: IR, remotes: dict[str, Path], tmp: Path) -> set[str]:
    """Push, with the development credential, a hostile image file into every production
    folder of every repository that credential writes; return the repositories written."""
    dev = ir.environment("development")
    written = {dev.gitops_repository}  # a deploy key's write access: its whole repository
    for url in written:
        work = tmp / "attacker"
        git(tmp, "clone", "-q", str(remotes[url]), str(work))
        for svc in ir.services:
            dep = next(d for d in svc.deployments if d.environment == "production")
            target = work / dep.gitops_dir / "image-production.yaml"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(HOSTILE)
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "rewrite production")
        git(work, "push", "-q", "origin", "HEAD:main")
    return written


def _production_reads(ir: IR, out: Path, remotes: dict[str, Path], tmp: Path) -> list[str]:
    """What Argo CD syncs into production: each production Application's source."""
    argocd = out / ir.output("argocd")
    project = yaml.safe_load((argocd / "project-production.yaml").read_text())
    seen = []
    for svc in ir.services:
        dep = next(d for d in svc.deployments if d.environment == "production")
        app = yaml.safe_load((argocd / f"{dep.app_name}.yaml").read_text())
        source = app["spec"]["source"]
        assert source["repoURL"] in project["spec"]["sourceRepos"]  # Argo CD admits it
        rev = "main" if source["targetRevision"] == "HEAD" else source["targetRevision"]
        remote = remotes[source["repoURL"]]
        listed = git(tmp, "--git-dir", str(remote), "ls-tree", "-r", "--name-only", rev)
        path = f"{source['path']}/image-production.yaml"
        seen.append(
            git(tmp, "--git-dir", str(remote), "show", f"{rev}:{path}")
            if path in listed.splitlines()
            else ""
        )
    return seen


def test_a_leaked_development_credential_cannot_rewrite_a_per_tier_production(
    tmp_path: Path,
) -> None:
    ir, out = _materialise(_per_tier(), tmp_path)
    acct = Account(out / ir.output("terraform"), ir.aws.account_id)
    # production's credential exists only in the production tier
    assert _credential_holders(ir, acct, "production") == {"deploy_production"}
    assert "deploy_production" not in _credential_holders(ir, acct, "development")
    remotes = _remotes(ir, tmp_path)
    written = _attack(ir, remotes, tmp_path)
    assert PROD_REPO not in written
    # production's Applications read its own repository, which the attacker cannot write
    project = yaml.safe_load((out / ir.output("argocd") / "project-production.yaml").read_text())
    assert project["spec"]["sourceRepos"] == [PROD_REPO]
    seen = _production_reads(ir, out, remotes, tmp_path)
    assert seen and all(HOSTILE.strip() not in x for x in seen)
    assert not [w for w in ir.warnings if w.code == "PC208" and "production" in w.message[:11]]


def test_on_the_reference_the_rewrite_reaches_production_and_pc208_says_so(
    tmp_path: Path,
) -> None:
    """The reference keeps one repository: the same push lands in what production syncs.
    That is what PC208 and explain --trust state, naming the credential that allows it."""
    ir, out = _materialise(REFERENCE, tmp_path)
    acct = Account(out / ir.output("terraform"), ir.aws.account_id)
    assert _credential_holders(ir, acct, "development") == {"deploy_development"}
    remotes = _remotes(ir, tmp_path)
    assert len(remotes) == 1
    _attack(ir, remotes, tmp_path)
    assert all(seen == HOSTILE.strip() for seen in _production_reads(ir, out, remotes, tmp_path))
    (w,) = [w for w in ir.warnings if w.code == "PC208" and w.message.startswith("production")]
    assert "shares its GitOps repository with development, testing" in w.message
    assert "their deploy credential can rewrite production's folder" in w.message
    assert "Argo CD syncs it without an approval" in w.message
    report = trust_report(ir)
    i = report.index(next(x for x in report if x.startswith("environment production ")))
    block = "\n".join(report[i : i + 12])
    assert "development, testing deploy to the same GitOps repository" in block

"""The first apply, phase by phase (specification 10.1 and 10.2): phases.tf, <env>.tfvars.

``var.environments`` says which environments an apply creates: the promotion order or
a beginning of it (default: all of them).  ``<env>.tfvars`` sets it to every
environment up to ``<env>``, so phase 1 is ``terraform apply -var-file=development.tfvars``
(development's pipelines, deploy project, roles, secrets and notification rules, and
every shared resource), and each later phase adds the next environment.

The Terraform files are built without knowing this; :func:`phased` is one pure
tree-to-tree rewrite run before rendering (the sqlglot way):

* a block owned by an environment (found by its label, from the naming conventions
  of the modules that write them: :func:`owners`) gets ``count = local.enabled.<env>``,
  1 or 0;
* a reference to an owned block from a block of the same environment, or of a later
  one (phases are prefixes of the promotion order, so it exists whenever the referring
  block does), gets the index ``[0]``;
* any other reference to it becomes optional: a list element joins the list through
  ``concat(..., <address>[*].<attr>)``, a single value becomes ``one(<address>[*].<attr>)``
  (null while the environment is off); a policy statement left with optional resources
  only is a ``dynamic "statement"`` that exists while one of them does.

Terraform moves existing objects to the index ``[0]`` by itself when ``count`` appears,
so a project applied before this keeps every resource.
"""

from __future__ import annotations

from typing import Any

from ...ir import IR, Environment
from ...serialize.hcl import Block, Call, Comment, Ref, Template
from .blocks import pipeline_label

VARIABLE = "environments"
# the phase's tfvars file the CodeBuild drift check plans with (drift-check.sh VAR_FILE)
DRIFT_VARIABLE = "drift_var_file"
_EVENTS = ("started", "succeeded", "failed", "approval-needed")  # chatops' rules


def _norm(label: str) -> str:
    return label.replace("-", "_")


def _seeds(ir: IR) -> list[tuple[str | None, str, Environment]]:
    """(resource type or None for any, label or label prefix, environment): the labels
    each module gives an environment's own blocks (their _assume, _topic, ... companions
    start with them)."""
    out: list[tuple[str | None, str, Environment]] = []
    for env in ir.environments:
        e = _norm(env.name)
        for prefix in (
            f"deploy_{e}",  # deploy project, log group, role (build_projects, iam_codepipeline)
            f"gitops_deploy_{e}",  # its secrets (foundation.audit) and their rotation
            f"argocd_deploy_{e}",
            f"approve_{e}",  # the approver role (iam_codepipeline.py)
            f"approvals_{e}",  # the approval topic, policy, subscriptions (notifications)
            f"secrets_{e}",  # the SecretStores' role (secrets.py)
            f"github_deploy_{e}",  # GitHub delivery: the environment's OIDC role
        ):
            out.append((None, prefix, env))
        out += [(None, f"{e}_{_norm(event)}", env) for event in _EVENTS]  # chatops' rules
    for svc in ir.services:
        for dep in svc.deployments:
            env = ir.environment(dep.environment)
            out.append(("aws_codepipeline", _norm(pipeline_label(ir, dep)), env))
    return out


def address(block: Block) -> str | None:
    """``type.label`` of a resource, ``data.type.label`` of a data source, else None."""
    if block.type == "resource" and len(block.labels) == 2:
        return ".".join(block.labels)
    if block.type == "data" and len(block.labels) == 2:
        return "data." + ".".join(block.labels)
    return None


def owners(ir: IR, blocks: list[Block]) -> dict[str, Environment]:
    """The blocks that belong to one environment, by address: the longest seed that is
    the label or begins it (``deploy_staging_eu_assume`` is staging-eu's, not staging's).
    Each label's candidates are its beginnings at a '_', looked up: thousands of
    services' blocks cost one pass, not blocks x seeds."""
    any_kind: dict[str, Environment] = {}
    typed: dict[tuple[str, str], Environment] = {}
    for kind, seed, env in _seeds(ir):
        if kind is None:
            any_kind[seed] = env
        else:
            typed[(kind, seed)] = env
    out: dict[str, Environment] = {}
    for block in blocks:
        addr = address(block)
        if addr is None:
            continue
        kind, label = block.labels[0], _norm(block.labels[1])
        ends = [i for i, c in enumerate(label) if c == "_"] + [len(label)]
        for end in reversed(ends):  # the longest first
            head = label[:end]
            hit = typed.get((kind, head)) if end == len(label) else None
            hit = hit or any_kind.get(head)
            if hit is not None:
                out[addr] = hit
                break
    return out


class _Rewrite:
    def __init__(self, owned: dict[str, Environment]) -> None:
        self.owned = owned

    def split(self, ref: Ref) -> tuple[str, str] | None:
        """(owned address, the rest of the traversal) of a reference to an owned block."""
        parts = ref.expr.split(".")
        n = 3 if parts[0] == "data" else 2
        addr = ".".join(parts[:n])
        if addr not in self.owned:
            return None
        rest = ".".join(parts[n:])
        return addr, ("." + rest if rest else "")

    def optional(self, ref: Ref, here: Environment | None) -> tuple[str, str] | None:
        """The split of a reference that may name nothing where it is written."""
        hit = self.split(ref)
        if hit is None:
            return None
        if here is not None and self.owned[hit[0]].index <= here.index:
            return None  # it exists whenever the block writing it does
        return hit

    def value(self, v: Any, here: Environment | None) -> Any:
        t = type(v)
        if t is Ref:
            hit = self.split(v)
            if hit is None:
                return v
            addr, rest = hit
            if self.optional(v, here) is None:
                return Ref(f"{addr}[0]{rest}")
            return Call("one", (Ref(f"{addr}[*]{rest}"),))
        if t is list or t is tuple:
            return self.sequence(list(v), here)
        if t is dict:
            return {k: self.value(x, here) for k, x in v.items()}
        if t is Template:
            parts: list[str | Ref] = []
            for part in v.parts:
                if isinstance(part, Ref) and self.split(part) is not None:
                    if self.optional(part, here) is not None:
                        raise ValueError(
                            f"phases: {part.expr} is interpolated where its environment "
                            "may be off; reference it as a list element instead"
                        )
                    addr, rest = self.split(part)  # type: ignore[misc]
                    part = Ref(f"{addr}[0]{rest}")
                parts.append(part)
            return Template(tuple(parts))
        if t is Call:
            return Call(v.name, tuple(self.value(a, here) for a in v.args))
        return v

    def sequence(self, items: list[Any], here: Environment | None) -> Any:
        """A list; with optional references, ``concat`` of literal runs and splats."""
        segments: list[Any] = []
        run: list[Any] = []
        for item in items:
            hit = self.optional(item, here) if type(item) is Ref else None
            if hit is None:
                run.append(self.value(item, here))
                continue
            if run:
                segments.append(run)
                run = []
            segments.append(Ref(f"{hit[0]}[*]{hit[1]}"))
        if not segments:
            return run
        if run:
            segments.append(run)
        return Call("concat", tuple(segments))

    def body(self, block: Block, here: Environment | None) -> None:
        items: list[Any] = []
        for item in block.body:
            if isinstance(item, Comment):
                items.append(item)
            elif isinstance(item, Block):
                self.body(item, here)
                items.append(self._statement(item, here) if item.type == "statement" else item)
            else:
                name, v = item
                # depends_on names whole resources: a counted one is fine as it is
                items.append(item if name == "depends_on" else (name, self.value(v, here)))
        block.body = items

    def _statement(self, st: Block, here: Environment | None) -> Block:
        """A policy statement whose resources all may be absent exists only with them."""
        resources = next(
            (i[1] for i in st.body if type(i) is tuple and i[0] == "resources"),
            None,
        )
        if not (type(resources) is Call and resources.name == "concat"):
            return st
        if any(type(seg) is list for seg in resources.args):
            return st  # a literal resource keeps it
        dyn = Block("dynamic", ("statement",))
        # [1] while one of them exists, else []: data, no conditional expression
        exists = Call("min", (1, Call("length", (resources,))))
        dyn.attr("for_each", Call("slice", ([1], 0, exists)))
        content = dyn.block("content")
        content.body = st.body
        return dyn


def enabled_ref(env: Environment) -> Ref:
    return Ref(f"local.enabled.{env.name}")


def phased(ir: IR, files: dict[str, list[Block]]) -> dict[str, list[Block]]:
    """Every environment's own blocks counted by ``var.environments``, every reference
    to them fixed (in place: the blocks are this render's own)."""
    every = [b for blocks in files.values() for b in blocks]
    owned = owners(ir, every)
    rewrite = _Rewrite(owned)
    for block in every:
        addr = address(block)
        here = owned.get(addr) if addr else None
        rewrite.body(block, here)
        if here is not None:
            if any(type(i) is tuple and i[0] in ("count", "for_each") for i in block.body):
                raise ValueError(f"phases: {addr} has a count of its own")
            block.body.insert(0, ("count", enabled_ref(here)))
    return files


def prefixes(ir: IR) -> list[list[str]]:
    """The allowed values of ``var.environments``: each beginning of the promotion order."""
    names = [e.name for e in ir.environments]
    return [names[: i + 1] for i in range(len(names))]


def phases_tf(ir: IR) -> list[Block]:
    names = [e.name for e in ir.environments]
    v = Block("variable", (VARIABLE,))
    v.attr(
        "description",
        "The environments this apply creates: the promotion order or a beginning of it. "
        "Phase N of the first apply is terraform apply -var-file=<Nth environment>.tfvars",
    )
    v.attr("type", Ref("list(string)"))
    v.attr("default", names)
    check = v.block("validation")
    check.attr(
        "condition",
        Call(
            "contains",
            ([",".join(p) for p in prefixes(ir)], Call("join", (",", Ref(f"var.{VARIABLE}")))),
        ),
    )
    check.attr(
        "error_message",
        f"{VARIABLE} is the promotion order or a beginning of it: {', '.join(names)}",
    )
    blocks = [v]
    if ir.delivery == "codepipeline":  # the CodeBuild drift check (reviews.py)
        d = Block("variable", (DRIFT_VARIABLE,))
        d.attr(
            "description",
            "The tfvars file the daily drift check plans with: each phase's <env>.tfvars "
            "sets it to itself, so that the check plans what the phase applied; empty "
            "(every environment) once the apply runs without -var-file",
        )
        d.attr("type", Ref("string"))
        d.attr("default", "")
        blocks.append(d)
    locals_ = Block("locals")
    locals_.comment("1 for each environment var.environments enables, else 0: its resources' count")
    locals_.attr(
        "enabled",
        {
            e.name: Call("length", (Call("setintersection", (Ref(f"var.{VARIABLE}"), [e.name])),))
            for e in ir.environments
        },
    )
    return [*blocks, locals_]


def tfvars(ir: IR) -> dict[str, list[Any]]:
    """``<env>.tfvars``: phase N of the first apply enables the first N environments."""
    out: dict[str, list[Any]] = {}
    last = ir.environments[-1].name
    for n, (env, names) in enumerate(zip(ir.environments, prefixes(ir), strict=True), start=1):
        items: list[Any] = [
            Comment(f"Phase {n} of the first apply: terraform apply -var-file={env.name}.tfvars"),
            Comment(f"creates {', '.join(names)} (and the resources every environment shares)."),
        ]
        if env.name != last:
            items.append(
                Comment(
                    "Once every phase is applied, apply without -var-file: an earlier phase's "
                    "file would remove the later environments again."
                )
            )
        items.append((VARIABLE, names))
        if env.name != last and ir.delivery == "codepipeline":
            items.append((DRIFT_VARIABLE, f"{env.name}.tfvars"))
        out[f"{env.name}.tfvars"] = items
    return out


def describe(ir: IR, folder: str) -> list[str]:
    """The first apply's phases, for ``explain``."""
    names = [e.name for e in ir.environments]
    later = ", ".join(f"{n}.tfvars" for n in names[1:])
    out = [
        f"  phase by phase (optional): terraform apply -var-file={names[0]}.tfvars creates "
        f"{names[0]}'s pipelines, roles and secrets and everything shared"
    ]
    if later:
        out[0] += f"; then {later}, each adding the next environment"
    out.append(
        f"  after the last phase, apply in {folder} without -var-file (every environment): an "
        "earlier phase's file removes the later environments"
    )
    return out

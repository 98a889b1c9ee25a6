"""The delivery flow of a pipeline as a Mermaid or Graphviz DOT graph, from the IR."""

from __future__ import annotations

from ..ir import IR, Rollback, Strategy
from ..targets.chart.analysis import progress_deadline_seconds


def _source(rb: Rollback) -> str:
    return "Prometheus" if rb.provider == "prometheus" else "CloudWatch"


def rollback_triggers(ir: IR) -> list[str]:
    """What makes Argo Rollouts roll back, in words (graph and explain share it)."""
    rb = ir.rollback
    if rb is None:
        return []
    triggers = []
    if rb.health_checks:
        has_metrics = rb.max_error_rate is not None or rb.max_p90_latency is not None
        minutes = sorted(
            {
                progress_deadline_seconds(rb if has_metrics else None, dep.strategy.kind) // 60
                for svc in ir.services
                for dep in svc.deployments
                if dep.strategy.kind != "rolling"
            }
            or {10}
        )
        within = f"{minutes[0]}m" if len(minutes) == 1 else f"{minutes[0]}-{minutes[-1]}m"
        triggers.append(f"pods not ready within {within} (probes, progress deadline)")
    if rb.max_error_rate is not None:
        triggers.append(f"{_source(rb)} 5xx rate > {rb.max_error_rate:g}")
    if rb.max_p90_latency:
        triggers.append(f"{_source(rb)} p90 latency > {rb.max_p90_latency}")
    return triggers


def _strategy(s: Strategy) -> str:
    if s.kind == "canary":
        parts = [f"{st.weight}%" + (f" ⏸ {st.pause}" if st.pause else "") for st in s.steps]
        return "canary (ALB traffic) " + " → ".join(parts)
    if s.kind == "blue-green":
        promote = "auto-promote" if s.auto_promote else "manual promotion"
        return f"blue-green, {promote}, {s.preview_replicas} preview"
    return "rolling update"


def flow(ir: IR) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(nodes, edges): nodes are (id, shape, label), edges (from, to, style)."""
    nodes: list[tuple[str, str, str]] = []
    edges: list[tuple[str, str, str]] = []
    sec = ir.security
    nodes.append(("push", "round", "git push"))
    kinds = {(s.runtime, s.steps) for s in ir.services}
    if len(kinds) == 1:
        ((runtime, steps),) = kinds
        label = f"validate: {len(steps)} ci steps ({runtime.language} {runtime.version})"
    else:  # a polyglot repository: each service its own runtime and steps
        runtimes = sorted({f"{s.runtime.language} {s.runtime.version}" for s in ir.services})
        label = "validate: per-service ci steps (" + ", ".join(runtimes) + ")"
    nodes.append(("validate", "box", label))
    edges.append(("push", "validate", "solid"))
    last = "validate"
    for ident, label in (
        ("sast", f"SonarQube ≥ {sec.sast_fail_on}" if sec.sast_fail_on else ""),
        (
            "sca",
            f"OWASP dependency check ≥ {sec.dependencies_fail_on}"
            if sec.dependencies_fail_on
            else "",
        ),
    ):
        if label:
            nodes.append((ident, "box", label))
            edges.append((last, ident, "solid"))
            last = ident
    nodes.append(("build", "box", f"build and push {len(ir.services)} image(s) to ECR"))
    edges.append((last, "build", "solid"))
    last = "build"
    if sec.image_scan_fail_on:
        nodes.append(("scan", "box", f"ECR scan ≥ {sec.image_scan_fail_on}"))
        edges.append((last, "scan", "solid"))
        last = "scan"
    if sec.sign_images:
        nodes.append(("sign", "box", "sign images (KMS)"))
        edges.append((last, "sign", "solid"))
        last = "sign"
    # only environments whose deployments are Rollouts roll back (a Deployment does not)
    rolled = {
        d.environment for s in ir.services for d in s.deployments if d.strategy.kind != "rolling"
    }
    rollback = ir.rollback is not None and bool(rolled)
    if rollback:
        nodes.append(
            ("rollback", "note", "automated rollback: " + ", ".join(rollback_triggers(ir)))
        )
    for env in ir.environments:
        e = f"env_{env.index}"
        for j, branch in enumerate(env.branches):
            b = f"branch_{env.index}_{j}"
            nodes.append((b, "round", f"branch {branch}"))
            edges.append((b, e, "dotted"))
        gate = last
        if env.approval:
            nodes.append((f"approve_{env.index}", "diamond", f"manual approval: {env.name}"))
            edges.append((last, f"approve_{env.index}", "solid"))
            gate = f"approve_{env.index}"
        strategies = sorted(
            {
                _strategy(d.strategy)
                for s in ir.services
                for d in s.deployments
                if d.environment == env.name
            }
        )
        nodes.append((e, "box", f"deploy {env.name} ({env.namespace}): " + "; ".join(strategies)))
        edges.append((gate, e, "solid"))
        if rollback and env.name in rolled:
            edges.append((e, "rollback", "dotted"))
    if ir.security.dast:
        dast = ir.security.dast
        nodes.append(
            ("dast", "box", f"OWASP ZAP on {dast.environment} ≥ {dast.fail_on}, after each deploy")
        )
        edges.append((f"env_{ir.environment(dast.environment).index}", "dast", "solid"))
        for env in ir.environments:
            if env.after_dast:  # promotion gate: only digests that passed
                edges.append(("dast", f"env_{env.index}", "dotted"))
    n = ir.notifications
    if n.slack_channel:
        nodes.append(("slack", "note", f"Slack {n.slack_channel}: {', '.join(n.slack_events)}"))
    return nodes, edges


def _mermaid_text(s: str) -> str:
    return (
        s.replace("#", "#35;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("\n", " ")
    )


def mermaid(ir: IR) -> str:
    nodes, edges = flow(ir)
    shapes = {
        "box": ('["', '"]'),
        "round": ('(["', '"])'),
        "diamond": ('{"', '"}'),
        "note": ('>"', '"]'),
    }
    out = ["flowchart LR"]
    for ident, shape, label in nodes:
        left, right = shapes[shape]
        out.append(f"  {ident}{left}{_mermaid_text(label)}{right}")
    for a, b, style in edges:
        out.append(f"  {a} {'-.->' if style == 'dotted' else '-->'} {b}")
    return "\n".join(out) + "\n"


def dot(ir: IR) -> str:
    nodes, edges = flow(ir)
    shapes = {"box": "box", "round": "ellipse", "diamond": "diamond", "note": "note"}
    out = ["digraph pipeline {", "  rankdir=LR;"]
    for ident, shape, label in nodes:
        text = label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
        out.append(f'  {ident} [shape={shapes[shape]}, label="{text}"];')
    for a, b, style in edges:
        out.append(f"  {a} -> {b}" + (" [style=dotted];" if style == "dotted" else ";"))
    out.append("}")
    return "\n".join(out) + "\n"

"""CodeBuild's on-demand Linux compute types, and the smallest that fits the build
(the CodeBuild projects are Terraform's; the IR carries only the vCPU and memory)."""

from __future__ import annotations

from ...ir import IR
from .. import Finding

# (name, vCPU, GiB), smallest first
COMPUTE_TYPES = (
    ("BUILD_GENERAL1_SMALL", 2, 4),
    ("BUILD_GENERAL1_MEDIUM", 4, 8),
    ("BUILD_GENERAL1_LARGE", 8, 16),
    ("BUILD_GENERAL1_XLARGE", 36, 72),
    ("BUILD_GENERAL1_2XLARGE", 72, 144),
)


def compute_type(vcpu: int, memory_gb: int) -> tuple[str, int, int]:
    for name, cpus, mem in COMPUTE_TYPES:
        if cpus >= vcpu and mem >= memory_gb:
            return name, cpus, mem
    return COMPUTE_TYPES[-1]  # pragma: no cover - the model caps vcpu/memory at the largest


def compute_findings(ir: IR) -> list[Finding]:
    """A located warning when no compute type has exactly the size asked for."""
    vcpu, mem = ir.build.vcpu, ir.build.memory_gb
    name, cpus, gib = compute_type(vcpu, mem)
    if (cpus, gib) == (vcpu, mem):
        return []
    return [
        Finding(
            ("build", "compute"),
            f"no CodeBuild compute type has exactly {vcpu} vCPU / {mem} GiB; "
            f"using {name} ({cpus} vCPU / {gib} GiB)",
            severity="warning",
            code="PC305",
        )
    ]

"""placeholder until implemented"""
from pathlib import PurePosixPath
from ..ir import IR
name = "terraform"
def render(ir: IR) -> dict[PurePosixPath, str]:
    return {}

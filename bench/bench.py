"""Benchmark pipecompile as users run it: whole processes, median of several runs.

    python bench/bench.py                      # N = 1, 10, 100, 1000 in a temp folder
    python bench/bench.py --dir /dev/shm/pc    # the same on a tmpfs
    python bench/bench.py --sizes 1 100 --runs 7

For each N it generates a pipeline in the reference format (services varied:
some with a path, ports, replica maps, secrets), then times, after one
warm-up run: build into an empty folder, build again with nothing changed,
check with nothing changed, and check after one service changed.  Peak RSS
is the child's ru_maxrss (from wait4).  The floors `python -c pass` and
`python -c "import click"` are timed in the same run, and every figure is
also printed as a ratio to them.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "samples" / "ecommerce" / "pipeline.yaml"
PY = sys.executable


def pipeline(n: int) -> str:
    """The reference pipeline with its services replaced by ``n`` varied ones, each in
    its own folder."""
    head = REFERENCE.read_text().split("\nservices:\n")[0]
    tail = "\nnotifications:" + REFERENCE.read_text().split("\nnotifications:")[1]
    out = [head, "\nservices:\n"]
    for i in range(n):
        out.append(f"  svc-{i:04d}:\n")
        # each service in its own folder, as in a monorepo (a service at '.' must exclude
        # every other service's folder, and a CodePipeline trigger excludes at most 8)
        out.append(f"    path: services/svc-{i:04d}\n")
        out.append(f"    port: {3000 + i % 5000}\n")
        if i % 4 == 0:
            out.append("    replicas:\n      staging: 2\n      production: 3\n")
        if i % 5 == 0:
            out.append(f"    secrets: [ecommerce/svc-{i:04d}/database-url]\n")
        if i % 7 == 0:
            out.append("    strategy: canary\n")
    out.append(tail)
    return "".join(out)


def run(cmd: list[str], cwd: Path) -> tuple[float, int, int]:
    """(seconds, peak RSS in MiB, exit code) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    return elapsed, usage.ru_maxrss // 1024, os.waitstatus_to_exitcode(status)


def measure(cmd: list[str], cwd: Path, runs: int, prepare=None, expect: int = 0):  # type: ignore[no-untyped-def]
    times, rss = [], []
    for i in range(runs + 1):  # the first run is the warm-up
        if prepare:
            prepare()
        t, m, code = run(cmd, cwd)
        if code != expect:
            raise SystemExit(f"{cmd} exited {code}, expected {expect}")
        if i:
            times.append(t)
            rss.append(m)
    return statistics.median(times), max(rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", type=Path, help="work folder (default: a new temp folder)")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="pipecompile-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    pc = [PY, "-m", "pipecompile"]

    floor_pass, _ = measure([PY, "-c", "pass"], base, args.runs)
    floor_click, _ = measure([PY, "-c", "import click"], base, args.runs)
    print(
        f"# {time.strftime('%Y-%m-%d')} · {platform.node()} · {platform.machine()} · "
        f"{os.cpu_count()} cores · Python {platform.python_version()} · {base}"
    )
    print(
        f"floors: python -c pass {floor_pass * 1000:.0f} ms, "
        f"python -c 'import click' {floor_click * 1000:.0f} ms (median of {args.runs})"
    )
    # the goal is stated for the reference sample itself: check it as committed
    # (the headers name the pipeline by its path in the repository: keep that path)
    shutil.rmtree(base / "reference", ignore_errors=True)
    ref = base / "reference" / "samples" / REFERENCE.parent.name
    shutil.copytree(REFERENCE.parent, ref)
    (base / "reference" / ".git").mkdir()
    ref_check, _ = measure([*pc, "check"], ref, args.runs)
    ref_build, _ = measure([*pc, "build", "-q"], ref, args.runs)
    print(
        f"reference sample (samples/ecommerce), nothing changed: check "
        f"{ref_check * 1000:.0f} ms ({ref_check / floor_click:.2f}× click), build "
        f"{ref_build * 1000:.0f} ms ({ref_build / floor_click:.2f}× click)"
    )
    print(
        "| N | files | build (empty) | build (no change) | check (no change) "
        "| check (1 changed) | peak RSS |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        work = base / f"n{n}"
        text = pipeline(n)

        def fresh(work: Path = work, text: str = text) -> None:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            (work / "pipeline.yaml").write_text(text)

        build_empty, rss1 = measure([*pc, "build", "-q"], work, args.runs, fresh)
        files = sum(1 for p in work.rglob("*") if p.is_file()) - 1
        build_same, rss2 = measure([*pc, "build", "-q"], work, args.runs)
        check_same, rss3 = measure([*pc, "check"], work, args.runs)
        changed = text.replace("  svc-0000:\n", "  svc-0000:\n    dockerfile: Dockerfile.prod\n")

        def edit(work: Path = work, changed: str = changed) -> None:
            (work / "pipeline.yaml").write_text(changed)

        check_changed, rss4 = measure([*pc, "check"], work, args.runs, edit, expect=1)
        fresh()

        def cell(t: float) -> str:
            return f"{t:.2f} s ({t / floor_click:.1f}× click, {t / floor_pass:.0f}× pass)"

        print(
            f"| {n} | {files} | {cell(build_empty)} | {cell(build_same)} | {cell(check_same)} "
            f"| {cell(check_changed)} | {max(rss1, rss2, rss3, rss4)} MiB |",
            flush=True,
        )
    if not args.dir:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

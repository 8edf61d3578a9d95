"""Reading a Snakemake dry run (``snakemake -n``): the jobs it plans, and the resources of each."""
from __future__ import annotations

import subprocess


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count ({} when nothing is to be done)."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if "Nothing to be done" in result.stdout + result.stderr:
        return {}
    lines = result.stdout.splitlines()
    jobs = {}
    for line in lines[lines.index("Job stats:") + 3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def planned_resources(result: subprocess.CompletedProcess) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of each job a dry run plans, in its order; resource values as printed."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    planned, rule = [], None
    for line in result.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("    resources: "):
            pairs = line.removeprefix("    resources: ").split(", ")
            planned.append((rule, dict(pair.split("=", 1) for pair in pairs)))
    return planned

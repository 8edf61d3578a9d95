"""Tables and plots across stages from ``<eval-dir>/<stage>/<task>.metrics.json``.

Outputs (``out_dir``): ``results.md`` (every task x every stage, strict and lenient side by side, values in %,
a mean row per family, secondary metrics, skipped samples, missing combinations), ``results.csv`` and
``results.parquet`` (long format: stage, task, family, metric, value, n; value is a fraction, empty where
missing) and one ``<family>.png`` per task family with the stages side by side.
A stage/task combination without a metrics file is shown as "—" and listed; it is never left out.
Family means are unweighted means over the family's tasks, and only exist when every task has a value.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tinyrs.eval.scoring import metric_names
from tinyrs.io import atomic_open, read_json

MISSING = "—"
MEAN_TASK = "mean"
LONG_COLUMNS = ("stage", "task", "family", "metric", "value", "n")


@dataclass(frozen=True)
class TaskInfo:
    key: str
    family: str
    primary: str
    lenient: str


@dataclass
class Results:
    stages: list[str]
    tasks: list[TaskInfo]                      # grouped by family, in first-seen order
    documents: dict[tuple[str, str], dict]     # (stage, task) -> metrics document

    def missing(self) -> list[tuple[str, str]]:
        return [(stage, task.key) for task in self.tasks for stage in self.stages
                if (stage, task.key) not in self.documents]

    def families(self) -> dict[str, list[TaskInfo]]:
        grouped: dict[str, list[TaskInfo]] = {}
        for task in self.tasks:
            grouped.setdefault(task.family, []).append(task)
        return grouped

    def value(self, stage: str, task: TaskInfo, metric: str) -> float | None:
        document = self.documents.get((stage, task.key))
        entry = document["metrics"].get(metric) if document else None
        return entry["value"] if entry else None

    def family_mean(self, stage: str, tasks: list[TaskInfo], lenient: bool) -> float | None:
        values = [self.value(stage, task, task.lenient if lenient else task.primary) for task in tasks]
        return None if any(v is None for v in values) else sum(values) / len(values)


def collect(eval_dir: str | Path, stages: list[str], expected: dict[str, dict] | None = None) -> Results:
    """Read every stage's metrics files. ``expected``: config-style task table, so absent tasks still get rows."""
    eval_dir = Path(eval_dir)
    documents: dict[tuple[str, str], dict] = {}
    infos: dict[str, TaskInfo] = {}
    for key, entry in (expected or {}).items():
        infos[key] = TaskInfo(key, entry["family"], *metric_names(entry["metric"]))
    for stage in stages:
        for path in sorted((eval_dir / stage).glob("*.metrics.json")):
            if ".shard-" in path.name:
                continue
            document = read_json(path)
            documents[(stage, document["task"])] = document
            infos.setdefault(document["task"], TaskInfo(document["task"], document["family"],
                                                        document["primary"], document["lenient"]))
    families: dict[str, list[TaskInfo]] = {}
    for info in infos.values():
        families.setdefault(info.family, []).append(info)
    return Results(list(stages), [info for group in families.values() for info in group], documents)


def long_rows(results: Results) -> list[dict]:
    rows = []
    for stage in results.stages:
        for family, tasks in results.families().items():
            for task in tasks:
                document = results.documents.get((stage, task.key))
                if document is None:
                    rows += [dict(stage=stage, task=task.key, family=family, metric=m, value=None, n=None)
                             for m in (task.primary, task.lenient)]
                    continue
                rows += [dict(stage=stage, task=task.key, family=family, metric=m, value=e["value"], n=e["n"])
                         for m, e in document["metrics"].items()]
            shared = {task.primary for task in tasks}
            name = shared.pop() if len(shared) == 1 else "primary"
            counts = [results.documents[(stage, t.key)]["n"] for t in tasks if (stage, t.key) in results.documents]
            total = sum(counts) if len(counts) == len(tasks) else None
            for lenient in (False, True):
                rows.append(dict(stage=stage, task=MEAN_TASK, family=family,
                                 metric=f"{name}_lenient" if lenient else name,
                                 value=results.family_mean(stage, tasks, lenient), n=total))
    return rows


def _percent(value: float | None) -> str:
    return MISSING if value is None else f"{100 * value:.2f}"


def _sample_counts(results: Results, task: TaskInfo) -> str:
    counts = [results.documents[(s, task.key)]["n"] for s in results.stages if (s, task.key) in results.documents]
    return "/".join(str(n) for n in dict.fromkeys(counts)) or MISSING


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in body]


def markdown(results: Results) -> str:
    header = ["family", "task", "metric", "n"]
    for stage in results.stages:
        header += [stage, f"{stage} (lenient)"]
    body = []
    for family, tasks in results.families().items():
        for task in tasks:
            row = [family, task.key, task.primary, _sample_counts(results, task)]
            for stage in results.stages:
                row += [_percent(results.value(stage, task, task.primary)),
                        _percent(results.value(stage, task, task.lenient))]
            body.append(row)
        row = [family, f"**{MEAN_TASK}**", "", ""]
        for stage in results.stages:
            row += [_percent(results.family_mean(stage, tasks, False)), _percent(results.family_mean(stage, tasks, True))]
        body.append(row)
    lines = ["# TinyRS evaluation", "",
             "Values in %. Strict scores first; *lenient* = the reference evaluator's rule "
             "(substring match, box-less grounding answers dropped), kept only for comparison with published numbers. "
             "n = samples scored per task.", ""]
    lines += _table(header, body)
    detail_body = []
    for task in results.tasks:
        names = dict.fromkeys(m for s in results.stages if (s, task.key) in results.documents
                              for m in results.documents[(s, task.key)]["metrics"])
        for name in names:
            if name in (task.primary, task.lenient):
                continue
            cells = []
            for stage in results.stages:
                document = results.documents.get((stage, task.key))
                entry = document["metrics"].get(name) if document else None
                cells.append(f"{_percent(entry['value'])} (n={entry['n']})" if entry else MISSING)
            detail_body.append([task.key, name, *cells])
    if detail_body:
        lines += ["", "## Secondary metrics", ""] + _table(["task", "metric", *results.stages], detail_body)
    skipped = [f"- {stage}/{task}: " + ", ".join(f"{reason} {count}" for reason, count in sorted(doc["skipped"].items()))
               for (stage, task), doc in sorted(results.documents.items()) if doc.get("skipped")]
    if skipped:
        lines += ["", "## Skipped samples", ""] + skipped
    missing = results.missing()
    lines += ["", "## Missing", ""]
    lines += [f"- {stage}/{task}: no metrics file" for stage, task in missing] or ["none"]
    return "\n".join(lines) + "\n"


def plot_file_name(family: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", family) + ".png"


def plot_family(results: Results, family: str, tasks: list[TaskInfo], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    labels = [task.key for task in tasks] + [MEAN_TASK]
    width = 0.8 / max(len(results.stages), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(labels) * max(1, len(results.stages))), 3.5))
    for offset, stage in enumerate(results.stages):
        values = [results.value(stage, task, task.primary) for task in tasks]
        values.append(results.family_mean(stage, tasks, False))
        for position, value in enumerate(values):
            x = position + (offset - (len(results.stages) - 1) / 2) * width
            if value is None:
                ax.text(x, 1, MISSING, ha="center", va="bottom", fontsize=7, color=f"C{offset}")
            else:
                ax.bar(x, 100 * value, width, color=f"C{offset}")
                ax.text(x, 100 * value + 1, f"{100 * value:.1f}", ha="center", va="bottom", fontsize=6)
    ax.legend(handles=[Patch(color=f"C{i}", label=stage) for i, stage in enumerate(results.stages)],
              fontsize=7, ncol=len(results.stages))
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=7)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"{tasks[0].primary} (%)" if len({t.primary for t in tasks}) == 1 else "score (%)")
    ax.set_title(family)
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


def write_report(eval_dir: str | Path, stages: list[str], out_dir: str | Path,
                 expected: dict[str, dict] | None = None) -> str:
    """Write every report file; returns the Markdown table."""
    import pandas as pd

    out_dir = Path(out_dir)
    results = collect(eval_dir, stages, expected)
    text = markdown(results)
    with atomic_open(out_dir / "results.md", "w", encoding="utf-8") as handle:
        handle.write(text)
    frame = pd.DataFrame(long_rows(results), columns=list(LONG_COLUMNS))
    frame["value"] = frame["value"].astype("float64")
    frame["n"] = frame["n"].astype("Int64")
    with atomic_open(out_dir / "results.csv", "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)
    with atomic_open(out_dir / "results.parquet", "wb") as handle:
        frame.to_parquet(handle, index=False)
    for family, tasks in results.families().items():
        plot_family(results, family, tasks, out_dir / plot_file_name(family))
    return text

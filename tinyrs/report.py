"""Tables and plots across stages from ``<eval-dir>/<stage>/<task>.metrics.json``.

A "stage" here is a report column: a pipeline stage, or a published checkpoint evaluated by the same harness
(config ``eval.external_models``). Outputs (``out_dir``): ``results.md`` (every task x every column, strict and
lenient side by side, values in %, each with its 95% Wilson interval and n; a mean row per family; breakdowns
(LHRS-Bench per question type, grounding per box size) and secondary metrics; skipped samples; missing
combinations; which columns are comparable to published tables), ``results.csv`` and ``results.parquet`` (long
format: stage, task, family, metric, value, n, correct, ci_low, ci_high; fractions, empty where missing or not
a proportion) and one ``<family>.png`` per task family with the columns side by side and the intervals as
error bars. A stage/task combination without a metrics file is shown as "—" and listed; it is never left out.
Family means are unweighted means over the family's tasks, and only exist when every task has a value; a mean
of proportions is no binomial proportion, so it gets no interval.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tinyrs.eval.scoring import metric_names
from tinyrs.grpo_report import write_grpo_section
from tinyrs.io import atomic_open, read_json
from tinyrs.paths import plot_name, report_table

MISSING = "—"
MEAN_TASK = "mean"
LONG_COLUMNS = ("stage", "task", "family", "metric", "value", "n", "correct", "ci_low", "ci_high")
CONFIDENCE = 0.95


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The Wilson score interval of ``successes`` out of ``n`` (scipy's), or None without samples."""
    if not n:
        return None
    from scipy.stats import binomtest

    interval = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def successes(entry: dict) -> int | None:
    """The count behind a proportion metric (``correct``; ``count`` for rates such as no_box_rate), None for a
    metric that is no proportion (mean IoU)."""
    count = entry.get("correct", entry.get("count"))
    return None if count is None or entry.get("n") is None else int(count)


def entry_interval(entry: dict | None) -> tuple[float, float] | None:
    if not entry or entry.get("value") is None:
        return None
    count = successes(entry)
    return None if count is None else wilson_interval(count, entry["n"])


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
    external: dict[str, str] = field(default_factory=dict)   # published-model column -> "repo@revision"

    def missing(self) -> list[tuple[str, str]]:
        return [(stage, task.key) for task in self.tasks for stage in self.stages
                if (stage, task.key) not in self.documents]

    def families(self) -> dict[str, list[TaskInfo]]:
        grouped: dict[str, list[TaskInfo]] = {}
        for task in self.tasks:
            grouped.setdefault(task.family, []).append(task)
        return grouped

    def entry(self, stage: str, task: TaskInfo, metric: str) -> dict | None:
        document = self.documents.get((stage, task.key))
        return document["metrics"].get(metric) if document else None

    def value(self, stage: str, task: TaskInfo, metric: str) -> float | None:
        entry = self.entry(stage, task, metric)
        return entry["value"] if entry else None

    def family_mean(self, stage: str, tasks: list[TaskInfo], lenient: bool) -> float | None:
        values = [self.value(stage, task, task.lenient if lenient else task.primary) for task in tasks]
        return None if any(v is None for v in values) else sum(values) / len(values)

    def family_count(self, stage: str, tasks: list[TaskInfo], lenient: bool) -> int | None:
        """Samples behind a family mean: the tasks' n summed (None unless every task has a metrics file)."""
        entries = [self.entry(stage, task, task.lenient if lenient else task.primary) for task in tasks]
        return None if any(e is None for e in entries) else sum(e["n"] for e in entries)


def collect(eval_dir: str | Path, stages: list[str], expected: dict[str, dict] | None = None,
            external: dict[str, str] | None = None) -> Results:
    """Read every stage's metrics files. ``expected``: config-style task table, so absent tasks still get rows;
    ``external``: published-model columns -> "repo@revision"."""
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
    return Results(list(stages), [info for group in families.values() for info in group], documents,
                   dict(external or {}))


def _long_row(stage: str, task: str, family: str, metric: str, entry: dict | None) -> dict:
    interval = entry_interval(entry)
    return dict(stage=stage, task=task, family=family, metric=metric,
                value=entry["value"] if entry else None, n=entry["n"] if entry else None,
                correct=successes(entry) if entry else None,
                ci_low=interval[0] if interval else None, ci_high=interval[1] if interval else None)


def long_rows(results: Results) -> list[dict]:
    rows = []
    for stage in results.stages:
        for family, tasks in results.families().items():
            for task in tasks:
                document = results.documents.get((stage, task.key))
                if document is None:
                    rows += [_long_row(stage, task.key, family, m, None) for m in (task.primary, task.lenient)]
                    continue
                rows += [_long_row(stage, task.key, family, m, e) for m, e in document["metrics"].items()]
            shared = {task.primary for task in tasks}
            name = shared.pop() if len(shared) == 1 else "primary"
            for lenient in (False, True):
                mean = {"value": results.family_mean(stage, tasks, lenient),
                        "n": results.family_count(stage, tasks, lenient)}
                rows.append(_long_row(stage, MEAN_TASK, family, f"{name}_lenient" if lenient else name, mean))
    return rows


def _percent(value: float | None) -> str:
    return MISSING if value is None else f"{100 * value:.2f}"


def _score(entry: dict | None) -> str:
    """A score cell: value in %, its 95% Wilson interval when it is a proportion, and its n."""
    if entry is None:
        return MISSING
    interval = entry_interval(entry)
    parts = [_percent(entry.get("value"))]
    if interval:
        parts.append(f"[{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]")
    if entry.get("n") is not None:
        parts.append(f"n={entry['n']}")
    return " ".join(parts)


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in body]


NOTES = [
    "Values in %. Each score: the value, its 95% Wilson interval [low, high] and n, the samples it counts.",
    "**Comparable to published tables: the *(lenient)* columns.** They score as the reference evaluator "
    "(the ScoreRS fork behind the TinyRS paper's tables: substring match; grounding answers without a box left out "
    "of the denominator). The strict columns are this harness's own rule (exact answers; a grounding answer "
    "without a box counts as a miss): use them to compare models here, not against published numbers.",
    "Family means are unweighted means of the task scores, n summed; a mean of proportions is no binomial "
    "proportion, so it has no interval.",
]


def markdown(results: Results) -> str:
    header = ["family", "task", "metric"]
    for stage in results.stages:
        header += [stage, f"{stage} (lenient)"]
    body = []
    for family, tasks in results.families().items():
        for task in tasks:
            row = [family, task.key, task.primary]
            for stage in results.stages:
                row += [_score(results.entry(stage, task, task.primary)),
                        _score(results.entry(stage, task, task.lenient))]
            body.append(row)
        row = [family, f"**{MEAN_TASK}**", ""]
        for stage in results.stages:
            for lenient in (False, True):
                count = results.family_count(stage, tasks, lenient)
                cell = _percent(results.family_mean(stage, tasks, lenient))
                row.append(cell if count is None or cell == MISSING else f"{cell} n={count}")
        body.append(row)
    lines = ["# TinyRS evaluation", "", *(line for note in NOTES for line in (note, "")), *_table(header, body)]
    if results.external:
        lines += ["", "## Published checkpoints", "",
                  "Evaluated by this harness like the pipeline's stages (same tasks, data, backend and scoring):", ""]
        lines += [f"- {name}: `{source}`" + _prompt_style(results, name) for name, source in results.external.items()]
    detail_body = []
    for task in results.tasks:
        names = dict.fromkeys(m for s in results.stages if (s, task.key) in results.documents
                              for m in results.documents[(s, task.key)]["metrics"])
        for name in names:
            if name in (task.primary, task.lenient):
                continue
            detail_body.append([task.key, name, *(_score(results.entry(stage, task, name)) for stage in results.stages)])
    if detail_body:
        lines += ["", "## Breakdowns and secondary metrics", "",
                  "LHRS-Bench per question type, grounding per box size (by the ground-truth box), and more; "
                  "values, intervals and n as above (mean IoU is no proportion: no interval).", ""]
        lines += _table(["task", "metric", *results.stages], detail_body)
    skipped = [f"- {stage}/{task}: " + ", ".join(f"{reason} {count}" for reason, count in sorted(doc["skipped"].items()))
               for (stage, task), doc in sorted(results.documents.items()) if doc.get("skipped")]
    if skipped:
        lines += ["", "## Skipped samples", ""] + skipped
    missing = results.missing()
    lines += ["", "## Missing", ""]
    lines += [f"- {stage}/{task}: no metrics file" for stage, task in missing] or ["none"]
    return "\n".join(lines) + "\n"


def _prompt_style(results: Results, stage: str) -> str:
    styles = sorted({doc.get("prompt_style") for (s, _), doc in results.documents.items()
                     if s == stage and doc.get("prompt_style")})
    return f", prompt style {'/'.join(styles)}" if styles else ""


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
        intervals = [entry_interval(results.entry(stage, task, task.primary)) for task in tasks] + [None]
        for position, (value, interval) in enumerate(zip(values, intervals)):
            x = position + (offset - (len(results.stages) - 1) / 2) * width
            if value is None:
                ax.text(x, 1, MISSING, ha="center", va="bottom", fontsize=7, color=f"C{offset}")
                continue
            error = None if interval is None else [[100 * (value - interval[0])], [100 * (interval[1] - value)]]
            ax.bar(x, 100 * value, width, color=f"C{offset}", yerr=error, error_kw={"elinewidth": 0.6, "capsize": 1})
            top = 100 * (interval[1] if interval else value)
            ax.text(x, top + 1, f"{100 * value:.1f}", ha="center", va="bottom", fontsize=6)
    ax.legend(handles=[Patch(color=f"C{i}", label=stage) for i, stage in enumerate(results.stages)],
              fontsize=7, ncol=len(results.stages), loc="upper center")
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=7)
    ax.set_ylim(0, 125)                      # room above 100 for the labels and the legend
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel(f"{tasks[0].primary} (%)" if len({t.primary for t in tasks}) == 1 else "score (%)")
    ax.set_title(family)
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


def write_report(eval_dir: str | Path, stages: list[str], out_dir: str | Path,
                 expected: dict[str, dict] | None = None, external: dict[str, str] | None = None,
                 grpo_log: str | Path | None = None, reward_check: list[str] | None = None) -> str:
    """Write every report file; returns the Markdown table (and, given GRPO's ``train_log.json``, its rewards
    over training and, given the reward check's two files, the check: ``grpo_report``)."""
    import pandas as pd

    out_dir = Path(out_dir)
    results = collect(eval_dir, stages, expected, external)
    text = markdown(results)
    if grpo_log is not None:
        text += "\n" + write_grpo_section(grpo_log, out_dir, reward_check)
    with atomic_open(out_dir / report_table("md"), "w", encoding="utf-8") as handle:
        handle.write(text)
    frame = pd.DataFrame(long_rows(results), columns=list(LONG_COLUMNS))
    for column in ("value", "ci_low", "ci_high"):
        frame[column] = frame[column].astype("float64")
    for column in ("n", "correct"):
        frame[column] = frame[column].astype("Int64")
    with atomic_open(out_dir / report_table("csv"), "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)
    with atomic_open(out_dir / report_table("parquet"), "wb") as handle:
        frame.to_parquet(handle, index=False)
    for family, tasks in results.families().items():
        plot_family(results, family, tasks, out_dir / plot_name(family))
    return text

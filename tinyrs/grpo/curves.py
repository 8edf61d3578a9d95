"""What GRPO's log says about its rewards: the total and each component (format, box IoU, closed, ...) per step.

TRL logs the total as ``reward`` and each reward function as ``rewards/<function>/mean`` (``format_reward``,
``accuracy_reward``: shown as ``format`` and ``accuracy``); our reward suite adds ``reward_components/<name>/mean``
for each component of the accuracy reward scored in that step's batch (a step whose prompts hold no grounding
sample logs no ``box_iou``), and ``reward_tasks/<task>/mean`` for each ``task`` of the batch (rows with a ``task``
column: the task's reward, GeoVLM-R1's R_task; shown as ``task/<task>``). A rising total
can come from format alone: the components and tasks say which reward moved.
"""
from __future__ import annotations

TOTAL = "total"
TASK = "task/"  # series name prefix of a task's reward
_SUFFIX = "/mean"
# logged prefix -> (suffix its names drop, prefix its series names get)
_PREFIXES = {"rewards/": ("_reward", ""), "reward_components/": ("", ""), "reward_tasks/": ("", TASK)}


def reward_series(log_history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """``{"total": [(step, reward), ...], "<component>": [(step, mean), ...], ...}`` in step order."""
    series: dict[str, list[tuple[int, float]]] = {TOTAL: []}
    for entry in log_history:
        if "reward" not in entry:
            continue
        step = int(entry.get("step", len(series[TOTAL]) + 1))
        series[TOTAL].append((step, float(entry["reward"])))
        for key, value in entry.items():
            for prefix, (dropped, named) in _PREFIXES.items():
                if key.startswith(prefix) and key.endswith(_SUFFIX):
                    name = key[len(prefix):-len(_SUFFIX)]
                    name = name[:-len(dropped)] if dropped and name.endswith(dropped) else name
                    series.setdefault(named + name, []).append((step, float(value)))
    return series


def _quarters(values: list[float]) -> dict:
    if len(values) < 4:
        return {"logged_steps": len(values)}
    quarter = len(values) // 4
    return {"logged_steps": len(values), "first_quarter_mean": sum(values[:quarter]) / quarter,
            "last_quarter_mean": sum(values[-quarter:]) / quarter}


def reward_curve(log_history: list[dict]) -> dict:
    """Mean reward over the first and the last quarter of the steps that logged it, for the total (top level,
    as before), per component (``components``) and per task (``tasks``, when the rows name tasks): did GRPO
    improve, and which reward moved?"""
    series = reward_series(log_history)
    curve = _quarters([value for _, value in series.pop(TOTAL)])
    quarters = {name: _quarters([value for _, value in points]) for name, points in sorted(series.items())}
    curve["components"] = {name: entry for name, entry in quarters.items() if not name.startswith(TASK)}
    curve["tasks"] = {name[len(TASK):]: entry for name, entry in quarters.items() if name.startswith(TASK)}
    return curve

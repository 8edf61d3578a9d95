"""The report's GRPO section: each reward component over the training steps, as a plot and a table, and GRPO's
reward check (``tinyrs.grpo.reward_check``): the model before the stage and after it on the same prompts.

Read from the GRPO model's ``train_log.json`` (TRL's log history, which ``tinyrs grpo`` saves beside the model).
A component is logged only at steps whose batch held samples it scores, so each curve has its own steps; the
plot draws every logged point faintly and a moving mean over ``window`` of them on top.
"""
from __future__ import annotations

from pathlib import Path

from tinyrs.grpo.curves import TASK, TOTAL, reward_curve, reward_series
from tinyrs.grpo.reward_check import compare_files
from tinyrs.io import atomic_open, read_json
from tinyrs.paths import GRPO_REWARDS_PLOT



def moving_mean(values: list[float], window: int) -> list[float]:
    """Mean of the last ``window`` values at each point (fewer at the start)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def plot_rewards(series: dict[str, list[tuple[int, float]]], path: Path, window: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [TOTAL, *sorted(name for name in series if name != TOTAL)]
    fig, axes = plt.subplots(1, len(names), figsize=(3.0 * len(names), 2.8), squeeze=False)
    for ax, name, colour in zip(axes[0], names, (f"C{i}" for i in range(len(names)))):
        steps = [step for step, _ in series[name]]
        values = [value for _, value in series[name]]
        ax.plot(steps, values, ".", color=colour, alpha=0.25, markersize=3)
        ax.plot(steps, moving_mean(values, window), "-", color=colour)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(f"reward (moving mean of {window})", fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


def rewards_markdown(curve: dict) -> str:
    rows = [(TOTAL, curve), *sorted(curve["components"].items()),
            *((f"{TASK}{name}", entry) for name, entry in sorted(curve["tasks"].items()))]
    lines = ["## GRPO rewards over training", "",
             "Mean of each reward over the first and the last quarter of the steps that scored it "
             f"(plot: `{GRPO_REWARDS_PLOT}`). The total can rise through format alone; the components say which moved.", "",
             "| reward | steps | first quarter | last quarter | change |", "|---|---|---|---|---|"]
    for name, entry in rows:
        if "first_quarter_mean" not in entry:
            lines.append(f"| {name} | {entry['logged_steps']} | — | — | — |")
            continue
        first, last = entry["first_quarter_mean"], entry["last_quarter_mean"]
        lines.append(f"| {name} | {entry['logged_steps']} | {first:.3f} | {last:.3f} | {last - first:+.3f} |")
    return "\n".join(lines) + "\n"


def reward_check_markdown(rows: list[dict], before: str, after: str) -> str:
    lines = ["## GRPO reward check: the same prompts before and after", "",
             f"Each model answered the same prompts of the GRPO data with the same sampling seeds ({before} vs "
             f"{after}); mean reward per prompt, and the mean paired change with its 95% interval (t, over prompts). "
             "The curves above compare other prompts early and late; this compares like with like.", "",
             "| reward | prompts | before | after | change | 95% interval |", "|---|---|---|---|---|---|"]
    for row in rows:
        interval = "—" if row["low"] is None else f"[{row['low']:+.3f}, {row['high']:+.3f}]"
        lines.append(f"| {row['reward']} | {row['n']} | {row['before']:.3f} | {row['after']:.3f} | "
                     f"{row['change']:+.3f} | {interval} |")
    return "\n".join(lines) + "\n"


def write_grpo_section(log_path: str | Path, out_dir: str | Path, reward_check: list[str] | None = None) -> str:
    """Plot ``GRPO_REWARDS_PLOT`` into ``out_dir`` and return the Markdown section; ``reward_check``: the reward
    check's files of the model before GRPO and after it."""
    history = read_json(log_path)
    plot_rewards(reward_series(history), Path(out_dir) / GRPO_REWARDS_PLOT)
    text = rewards_markdown(reward_curve(history))
    if reward_check:
        before, after = reward_check
        text += "\n" + reward_check_markdown(compare_files(before, after), Path(before).stem, Path(after).stem)
    return text

"""Score saved completions from a JSONL file with the configured rewards (``tinyrs rewards score``).

Each input line is a JSON object with a ``completion`` (a string or chat messages) and one of:
  - ``solution``: ``[answer_type, answer, question, base64 image]`` (image optional), as in the GRPO dataset;
  - ``answer`` and ``answer_type`` (optional ``question``, ``image``): scored with that type's mapping;
  - ``answer`` and ``reward``: a reward name of ``registry.REWARDS``, scored with that reward alone (weight 1).
An optional ``task`` routes the line as in training: by ``grpo.rewards.by_task`` when it names a task there,
else by the answer type.
The output repeats every input field and adds ``rewards``: each component's unweighted value, ``format``,
and ``total`` (the weighted sum the trainer would use). A bad line is an error naming its number, or with
``skip_bad_lines`` a counted skip; open-ended lines are counted skips when ``grpo.skip_open_ended`` is true.
"""
from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

from tinyrs.grpo.rewards.combine import RewardSuite, check_reward_names, check_truth, require_usable_judge
from tinyrs.grpo.rewards.inputs import Completion, Sample, completion_text, read_completion, sample_from_solution
from tinyrs.io import DataError, atomic_open, scan_jsonl
from tinyrs.settings import GrpoSettings

OUTPUT_FIELD = "rewards"


class Job(NamedTuple):
    record: dict
    completion: Completion
    sample: Sample
    mapping: dict[str, float]


def job_from_record(record: dict, where: str, suite: RewardSuite) -> Job | None:
    """The scoring job of one input record; None for an open-ended record that ``skip_open_ended`` drops."""
    if OUTPUT_FIELD in record:
        raise DataError(f"{where}: field '{OUTPUT_FIELD}' is reserved for the output")
    if "completion" not in record:
        raise DataError(f"{where}: field 'completion' is missing")
    text = completion_text(record["completion"], f"{where}: field 'completion'")
    completion = read_completion(text, suite.chat.reasoning_tag, suite.chat.answer_tag)
    if "solution" in record:
        sample = sample_from_solution(record["solution"], f"{where}: field 'solution'", record.get("task"))
    elif "answer" in record and ("answer_type" in record or "reward" in record or "task" in record):
        solution = [str(record.get("answer_type", "")), record["answer"], record.get("question", ""),
                    record.get("image")]
        sample = sample_from_solution(solution, where, record.get("task"))
    else:
        raise DataError(f"{where}: needs field 'solution', or 'answer' with 'answer_type', 'reward' or 'task'")
    if "reward" in record:
        reward = record["reward"]
        try:
            check_reward_names({reward: 1.0}, f"{where}: field 'reward'")
        except (ValueError, TypeError) as err:
            raise DataError(str(err)) from None
        mapping = {reward: 1.0}
        check_truth(sample, mapping, where)
        return Job(record, completion, sample, mapping)
    if not suite.keeps(sample):
        return None
    return Job(record, completion, sample, suite.mapping_for(sample, where))


def read_jobs(path: str | os.PathLike, suite: RewardSuite, skip_bad_lines: bool) -> tuple[list[Job], dict[str, int]]:
    """The scoring jobs of the file (``tinyrs.io.scan_jsonl``: bad lines named, fatal or counted skips).

    Lines may repeat an ``index``: several completions of one prompt legitimately share it.
    """
    contents = scan_jsonl(path, skip_bad_lines=skip_bad_lines, unique_field=None,
                          convert=lambda record, where: job_from_record(record, where, suite))
    jobs = [job for job in contents.records if job is not None]
    return jobs, {"bad_lines": contents.skipped_bad_lines, "open_ended": len(contents.records) - len(jobs)}


def score_file(
    grpo_settings: GrpoSettings, input_path: str | os.PathLike, output_path: str | os.PathLike, skip_bad_lines: bool = False
) -> dict[str, Any]:
    """Score every line of ``input_path`` into ``output_path``; return counts, mean total and component stats."""
    suite = RewardSuite(grpo_settings)
    jobs, skipped = read_jobs(input_path, suite, skip_bad_lines)
    if any("judge" in job.mapping for job in jobs):
        require_usable_judge(grpo_settings)
    scores = suite.score([j.completion for j in jobs], [j.sample for j in jobs], [j.mapping for j in jobs])
    with atomic_open(output_path, "w", encoding="utf-8") as handle:
        for job, rewards in zip(jobs, scores):
            handle.write(json.dumps({**job.record, OUTPUT_FIELD: rewards}, ensure_ascii=False) + "\n")
    totals = [rewards["total"] for rewards in scores]
    return {
        "scored": len(jobs),
        "skipped_bad_lines": skipped["bad_lines"],
        "skipped_open_ended": skipped["open_ended"],
        "mean_total": sum(totals) / len(totals) if totals else None,
        **suite.summary(),
    }

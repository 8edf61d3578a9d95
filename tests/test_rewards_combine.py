"""Rewards combined per answer type into TRL reward functions; pairing at any batch size; start-up checks."""
import copy
from pathlib import Path

import pytest
from judge_server import JudgeServer

from tinyrs.config import ConfigError, load_config, stage_settings
from tinyrs.grpo.rewards import RewardSuite, check_ready, keeps_sample, make_reward_functions
from tinyrs.io import DataError
from tinyrs.settings import GrpoSettings

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
KEY_ENV = "TINYRS_TEST_COMBINE_API_KEY"
_BASE_SETTINGS = stage_settings(load_config([CONFIG]), "grpo")


@pytest.fixture
def settings(monkeypatch):
    """The repository's GRPO settings, with the judge's key read from a variable that is unset."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    settings = copy.deepcopy(_BASE_SETTINGS)
    settings["judge"]["api_key_env"] = KEY_ENV
    return settings


def typed(settings: dict) -> GrpoSettings:
    """The rewards take a stage's typed settings; the tests edit the settings file's dict, then build them."""
    return GrpoSettings.from_dict(settings, "test settings")


def as_messages(text):
    return [{"role": "assistant", "content": text}]


def call(function, completions, solutions, **extra):
    """Call a reward function the way TRL 1.16's GRPOTrainer does."""
    n = len(completions)
    return function(prompts=[[{"role": "user", "content": "q"}]] * n, completions=completions,
                    completion_ids=[[1, 2]] * n, solution=solutions, image=[None] * n, trainer_state=None,
                    log_extra=lambda column, values: None, **extra)


def test_four_prompts_by_four_generations_are_paired_one_to_one(settings):
    prompts = [  # solution, then four generations with the accuracy each earns against THIS solution only
        (["1", "harbor", "What is the scene?", ""],
         [("harbor", 1.0), ("yes", 0.0), ("[[100, 100, 300, 300]]", 0.0), ("Harbor.", 1.0)]),
        (["1", "yes", "Is there a ship?", ""],
         [("no", 0.0), ("yes", 1.0), ("harbor", 0.0), ("True", 1.0)]),
        (["2", "[[100, 100, 300, 300]]", "Where is the tank?", ""],
         [("[[100, 100, 300, 300]]", 1.0), ("[[500, 500, 900, 900]]", 0.0), ("[[300, 300, 100, 100]]", 1.0),
          ("[[100, 100, 200, 300]]", 0.5)]),
        (["2", "[[500, 500, 900, 900]]", "Where is the ship?", ""],
         [("[[100, 100, 300, 300]]", 0.0), ("[[500, 500, 900, 900]]", 1.0), ("[[500, 500, 700, 900]]", 0.5),
          ("harbor", 0.0)]),
    ]
    completions, solutions, expected_accuracy, expected_format = [], [], [], []
    for solution, generations in prompts:
        for g, (answer, accuracy) in enumerate(generations):
            well_formed = g % 2 == 0
            reasoning = "<reasoning>look</reasoning>" if well_formed else ""
            text = f"{reasoning}<answer>{answer}</answer>"
            completions.append(as_messages(text))
            solutions.append(solution)
            expected_accuracy.append(accuracy)
            expected_format.append(1.0 if well_formed else 0.0)
    format_reward, accuracy_reward = make_reward_functions(typed(settings))
    assert call(format_reward, completions, solutions) == expected_format
    assert call(accuracy_reward, completions, solutions) == pytest.approx(expected_accuracy)
    assert (format_reward.__name__, accuracy_reward.__name__) == ("format_reward", "accuracy_reward")


def test_weights_and_format_weight(settings):
    settings["rewards"]["format_weight"] = 2.0
    settings["rewards"]["by_answer_type"]["1"] = {"closed": 0.5, "jaccard": 0.5}
    format_reward, accuracy_reward = make_reward_functions(typed(settings))
    completions = ["<reasoning>r</reasoning><answer>red car</answer>", "<answer>Blue car.</answer>"]
    solutions = [["1", "blue car", "q"]] * 2
    assert call(format_reward, completions, solutions) == [2.0, 0.0]
    # "red car" vs "blue car": closed 0, Jaccard 1/3; "Blue car." matches: closed 1, Jaccard 1
    assert call(accuracy_reward, completions, solutions) == pytest.approx([0.5 / 3, 1.0])


def test_completion_shapes(settings):
    _, accuracy_reward = make_reward_functions(typed(settings))
    completions = [
        "<answer>yes</answer>",
        as_messages("<answer>yes</answer>"),
        [{"role": "assistant",
          "content": [{"type": "text", "text": "<answer>"}, {"type": "text", "text": "yes</answer>"}]}],
    ]
    assert call(accuracy_reward, completions, [["1", "yes", "q", ""]] * 3) == [1.0, 1.0, 1.0]
    with pytest.raises(DataError, match=r"completions\[0\]"):
        call(accuracy_reward, [[{"role": "user", "content": "yes"}]], [["1", "yes", "q"]])


def test_bad_solutions_name_the_row(settings):
    _, accuracy_reward = make_reward_functions(typed(settings))
    with pytest.raises(DataError, match=r"solution\[1\].*answer_type '7'"):
        call(accuracy_reward, ["yes", "yes"], [["1", "yes", "q"], ["7", "yes", "q"]])
    with pytest.raises(DataError, match=r"solution\[0\]"):
        call(accuracy_reward, ["yes"], [["1", "yes"]])
    with pytest.raises(DataError, match=r"solution\[0\]: field 'answer'"):
        call(accuracy_reward, ["[[1, 1, 5, 5]]"], [["2", "no box", "q"]])
    with pytest.raises(DataError, match="2 completions but 1 solutions"):
        call(accuracy_reward, ["yes", "no"], [["1", "yes", "q"]])


def test_unknown_or_misplaced_reward_names_are_config_errors(settings):
    settings["rewards"]["by_answer_type"]["1"] = {"closd": 1.0}
    with pytest.raises(ConfigError, match=r"by_answer_type.1.*closd"):
        make_reward_functions(typed(settings))
    settings["rewards"]["by_answer_type"]["1"] = {"format": 1.0}
    with pytest.raises(ConfigError, match="format_weight"):
        make_reward_functions(typed(settings))


def test_statistics_per_component_and_log_metric(settings):
    _, accuracy_reward = make_reward_functions(typed(settings))
    logged = {}
    call(accuracy_reward, ["yes", "no", "[[0, 0, 10, 10]]"],
         [["1", "yes", "q"], ["1", "yes", "q"], ["2", "[[0, 0, 10, 10]]", "q"]],
         log_metric=lambda name, value: logged.__setitem__(name, value))
    assert logged == {"reward_components/closed/mean": 0.5, "reward_components/closed/std": 0.5,
                      "reward_components/box_iou/mean": 1.0, "reward_components/box_iou/std": 0.0}
    summary = accuracy_reward.suite.summary()
    assert (summary["closed/mean"], summary["closed/count"], summary["box_iou/count"]) == (0.5, 2, 1)


def test_task_rewards_are_logged_per_task(settings):
    """GeoVLM-R1's R_task of each task in the batch (the rows' ``task`` column), for the per-task reward curves."""
    settings["rewards"]["by_task"] = {"vqa": {"closed": 1.0}, "referred_detection": {"box_iou": 1.0}}
    _, accuracy_reward = make_reward_functions(typed(settings))
    logged = {}
    call(accuracy_reward, ["yes", "no", "[[0, 0, 10, 20]]"],
         [["1", "yes", "q"], ["1", "yes", "q"], ["2", "[[0, 0, 10, 10]]", "q"]],
         task=["vqa", "vqa", "referred_detection"], log_metric=lambda name, value: logged.__setitem__(name, value))
    assert logged["reward_tasks/vqa/mean"] == 0.5 and logged["reward_tasks/referred_detection/mean"] == 0.5
    logged.clear()
    call(accuracy_reward, ["yes"], [["1", "yes", "q"]], log_metric=lambda name, value: logged.__setitem__(name, value))
    assert not any(name.startswith("reward_tasks/") for name in logged)   # rows without a task column


def test_weight_zero_rewards_are_not_computed(settings):
    settings["rewards"]["by_answer_type"]["0"] = {"judge": 0.0, "jaccard": 1.0}
    assert check_ready(typed(settings), [["0", "ships in a port", "q", ""]]) == {"0": 1}  # no key needed
    _, accuracy_reward = make_reward_functions(typed(settings))
    assert call(accuracy_reward, ["ships in a port"], [["0", "ships in a port", "q"]]) == [1.0]
    assert "judge/fallbacks" not in accuracy_reward.suite.summary()


def test_judge_through_the_trl_function(settings):
    with JudgeServer() as server:
        settings["judge"]["base_url"] = server.base_url
        _, accuracy_reward = make_reward_functions(typed(settings))
        logged = {}
        rewards = call(accuracy_reward, ["<answer>ships leave</answer>", "<answer>a fire</answer>"],
                       [["0", "ships leave", "What happens?", ""]] * 2,
                       log_metric=lambda name, value: logged.__setitem__(name, value))
    assert rewards == [1.0, 0.2]
    assert logged["judge/judged"] == 2 and logged["judge/fallbacks"] == 0


def test_skip_open_ended(settings):
    settings["skip_open_ended"] = True
    open_row, closed_row = ["0", "ships leave", "q", ""], ["1", "yes", "q", ""]
    assert not keeps_sample(typed(settings), open_row) and keeps_sample(typed(settings), closed_row)
    _, accuracy_reward = make_reward_functions(typed(settings))
    with pytest.raises(DataError, match="skip_open_ended"):
        call(accuracy_reward, ["x"], [open_row])
    assert check_ready(typed(settings), [open_row, closed_row, closed_row]) == {"skipped_open_ended": 1, "1": 2}


ROWS = [["1", "yes", "q", ""], ["0", "ships leave", "q", ""], ["2", "[[0, 0, 10, 10]]", "q", ""]]


def test_check_ready_refuses_an_unusable_judge(settings):
    with pytest.raises(ConfigError, match=rf"{KEY_ENV}.*skip_open_ended"):
        check_ready(typed(settings), ROWS)


def test_check_ready_accepts_a_usable_judge_or_no_judge(settings, monkeypatch):
    assert check_ready(typed(settings), [ROWS[0], ROWS[2]]) == {"1": 1, "2": 1}              # no open-ended rows
    assert check_ready(typed({**settings, "skip_open_ended": True}), ROWS)["skipped_open_ended"] == 1
    local = copy.deepcopy(settings)
    local["judge"]["base_url"] = "http://127.0.0.1:8000/v1"                            # keyless server
    assert check_ready(typed(local), ROWS) == {"1": 1, "0": 1, "2": 1}
    no_judge = copy.deepcopy(settings)
    no_judge["rewards"]["by_answer_type"]["0"] = {"sbert": 1.0}
    assert check_ready(typed(no_judge), ROWS)["0"] == 1
    monkeypatch.setenv(KEY_ENV, "k")
    assert check_ready(typed(settings), ROWS)["0"] == 1


def test_check_ready_names_bad_rows(settings):
    with pytest.raises(DataError, match=r"solution\[1\]: field 'answer'"):
        check_ready(typed(settings), [ROWS[2], ["2", "left of the road", "q", ""]])
    with pytest.raises(DataError, match=r"solution\[0\].*answer_type '3'"):
        check_ready(typed(settings), [["3", "x", "q", ""]])


def test_suite_score_gives_components_and_total(settings):
    from tinyrs.grpo.rewards.inputs import Sample, read_completion

    suite = RewardSuite(typed(settings))
    completion = read_completion("<reasoning>r</reasoning><answer>[[0, 0, 20, 10]]</answer>", "reasoning", "answer")
    scored = suite.score([completion], [Sample("2", "[[0, 0, 10, 10]]", "q", None)], [{"box_iou": 1.0}])
    assert scored == [{"format": 1.0, "box_iou": 0.5, "total": 1.5}]


# --- GeoVLM-R1: routing by the sample's task (grpo.rewards.by_task), answer type as the fallback ---

GEOVLM_TASKS = {"classification": {"recall": 1.0}, "detection": {"detection": 1.0},
                "caption": {"levenshtein": 1.0}, "vqa": {"jaccard": 0.5, "closed": 0.5}}
LABELS = "forest, river, beach, desert, harbor, airport, farmland, meadow, church, bridge"


@pytest.fixture
def by_task(settings):
    settings["rewards"]["by_task"] = copy.deepcopy(GEOVLM_TASKS)
    return settings


def test_a_sample_naming_a_mapped_task_gets_that_tasks_rewards(by_task):
    _, accuracy_reward = make_reward_functions(typed(by_task))
    completions = ["<answer>forest, river</answer>",                 # recall 2/2
                   "<answer>[[0, 0, 100, 100]] [[0, 0, 50, 100]]</answer>",  # best IoUs 1, 1/2; 2 boxes for 2
                   "<answer>wide road</answer>",                    # Levenshtein ratio 2 x 9 / (9 + 10)
                   "<answer>red car</answer>"]                      # 0.5 x Jaccard 1/3 + 0.5 x closed 0
    solutions = [["1", "forest, river", "q"], ["2", "[[0, 0, 100, 100]], [[0, 0, 50, 100]]", "q"],
                 ["0", "wide roads", "q"], ["1", "blue car", "q"]]
    tasks = ["classification", "detection", "caption", "vqa"]
    rewards = call(accuracy_reward, completions, solutions, task=tasks)
    assert rewards == pytest.approx([1.0, 1.0, 18 / 19, 0.5 / 3])
    summary = accuracy_reward.suite.summary()
    assert {name for name in ("recall", "detection", "levenshtein", "jaccard", "closed", "judge", "box_iou")
            if f"{name}/count" in summary} == {"recall", "detection", "levenshtein", "jaccard", "closed"}


def test_samples_without_a_mapped_task_fall_back_to_their_answer_type(by_task):
    _, accuracy_reward = make_reward_functions(typed(by_task))
    # "forest" vs "forest, river": by answer type "1" (closed) 0; a task by_task lacks, or none, falls back too
    solutions = [["1", "forest, river", "q"]] * 3
    rewards = call(accuracy_reward, ["<answer>forest</answer>"] * 3, solutions, task=["classification", "scene", None])
    assert rewards == pytest.approx([0.5, 0.0, 0.0])
    assert call(accuracy_reward, ["<answer>yes</answer>"], [["1", "yes", "q"]]) == [1.0]   # no task column


def test_task_weights_apply(by_task):
    by_task["rewards"]["by_task"]["caption"] = {"levenshtein": 0.25, "jaccard": 2.0}
    _, accuracy_reward = make_reward_functions(typed(by_task))
    # "x b" vs "x c": Levenshtein ratio 2 x 2 / 6 (LCS "x "), Jaccard 1/3
    assert call(accuracy_reward, ["<answer>x b</answer>"], [["0", "x c", "q"]], task=["caption"]) == \
        pytest.approx([0.25 * 2 / 3 + 2.0 / 3])


def test_listing_every_class_scores_below_the_correct_answer(by_task):
    _, accuracy_reward = make_reward_functions(typed(by_task))
    solutions = [["1", "forest, river", "q"]] * 3
    spam, right, half = call(accuracy_reward, [f"<answer>{LABELS}</answer>", "<answer>river, forest</answer>",
                                               "<answer>forest</answer>"], solutions, task=["classification"] * 3)
    assert (spam, right, half) == pytest.approx((2 / 10, 1.0, 0.5))    # recall 1 x precision 2/10
    assert spam < half < right


def test_check_ready_counts_routes_and_names_unmapped_tasks(by_task):
    solutions = [["1", "forest", "q"], ["2", "[[0, 0, 10, 10]]", "q"], ["1", "yes", "q"], ["1", "no", "q"]]
    counts = check_ready(typed(by_task), solutions, ["classification", "detection", "clasification", None])
    assert counts == {"task:classification": 1, "task:detection": 1, "unmapped_task:clasification": 1, "1": 2}
    with pytest.raises(DataError, match=r"solution\[0\]: field 'answer'"):   # a box reward needs boxes
        check_ready(typed(by_task), [["1", "no box", "q"]], ["detection"])
    with pytest.raises(DataError, match=r"solution\[0\]: field 'task'"):
        check_ready(typed(by_task), [["1", "forest", "q"]], [7])


def test_bad_task_mappings_are_config_errors(by_task):
    by_task["rewards"]["by_task"]["caption"] = {"levenstein": 1.0}
    with pytest.raises(ConfigError, match=r"grpo.rewards.by_task.caption.*levenstein"):
        make_reward_functions(typed(by_task))
    by_task["rewards"]["by_task"]["caption"] = {"levenshtein": 0.0}
    with pytest.raises(ConfigError, match=r"grpo.rewards.by_task.caption: every weight is 0"):
        make_reward_functions(typed(by_task))


def test_the_config_names_the_file_and_key_of_a_bad_task_mapping(tmp_path):
    overlay = tmp_path / "geovlm.yaml"
    overlay.write_text("grpo_defaults:\n  rewards:\n    by_task:\n      caption: {levenstein: 1.0}\n      vqa: {}\n")
    with pytest.raises(ConfigError) as raised:
        load_config([CONFIG, overlay])
    message = str(raised.value)
    assert f"{overlay}: key 'grpo_defaults.rewards.by_task.caption': 'levenstein' is not one of" in message
    assert f"{overlay}: key 'grpo_defaults.rewards.by_task.vqa'" in message


def test_the_schemas_reward_names_are_the_registry():
    import yaml

    from tinyrs.config import SCHEMA_PATH
    from tinyrs.grpo.rewards import REWARDS

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert set(schema["$defs"]["reward_mapping"]["propertyNames"]["enum"]) == set(REWARDS) - {"format"}

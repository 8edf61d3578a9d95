"""SBERT-backed rewards (sbert, hslr, the judge's sbert fallback) with the offline all-MiniLM-L6-v2.

The encoder is loaded once for this module, with every network call refused, to prove it is offline.
"""
import math
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from judge_server import JudgeServer, Reply

from tinyrs.grpo.rewards import text
from tinyrs.grpo.rewards.inputs import Completion, Sample
from tinyrs.grpo.rewards.judge import Judge
from tinyrs.grpo.rewards.text import hslr_rewards, levenshtein_reward, sbert_rewards
from tinyrs.settings import JudgeSettings


@pytest.fixture(scope="module")
def encoder():
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    text._sbert_model = None  # load afresh even if another test in this process already did
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        patch.delenv("HF_HUB_OFFLINE", raising=False)  # conftest sets it; offline must not depend on it
        model = text.sbert_model()
    assert attempts == []
    return model


def test_loaded_once_without_network(encoder):
    assert text.sbert_model() is encoder


def test_sbert_reward_values(encoder):
    truth = "several ships are moored in a harbor"
    same, paraphrase, unrelated, empty = sbert_rewards(
        ["Several ships are moored in a harbor.", "boats docked at a port", "a dry desert with dunes", ""],
        [truth] * 4,
    )
    assert same == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= unrelated < paraphrase < same <= 1.0
    assert empty == 0.0
    assert sbert_rewards([None], [truth]) == [0.0]


def test_sbert_batch_equals_single_pairs(encoder):
    predictions = ["a harbor", "a farmland", "two planes"]
    truths = ["a port", "an airport", "a field"]
    batch = sbert_rewards(predictions, truths)
    singles = [sbert_rewards([p], [t])[0] for p, t in zip(predictions, truths)]
    assert batch == pytest.approx(singles, abs=1e-5)
    assert len(set(round(v, 4) for v in batch)) == 3


def test_hslr_is_the_mean_of_sbert_and_levenshtein(encoder):
    predictions, truths = ["the road was widened", "new buildings appeared"], ["a road was widened", "no change"]
    expected = [(s + levenshtein_reward(p, t)) / 2
                for s, p, t in zip(sbert_rewards(predictions, truths), predictions, truths)]
    assert hslr_rewards(predictions, truths) == pytest.approx(expected)
    assert hslr_rewards(["A road was widened."], ["a road was widened"])[0] == pytest.approx(1.0, abs=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=1, max_size=4))
def test_sbert_stays_in_range(encoder, predictions):
    for value in sbert_rewards(predictions, ["a harbor with ships"] * len(predictions)):
        assert math.isfinite(value) and 0.0 <= value <= 1.0


def test_judge_falls_back_to_sbert_when_the_server_fails(encoder):
    with JudgeServer(lambda body, call: Reply(status=500)) as server:
        judge = Judge(JudgeSettings(base_url=server.base_url, model="judge-model",
                                    api_key_env="TINYRS_TEST_UNSET_API_KEY", timeout_s=5, max_retries=1, concurrency=2,
                                    fallback="sbert", allow_insecure_http=False, allowed_key_envs=[],
                                    prompt_template=None), backoff_s=0.01)
        rewards = judge([Completion("", "ships in a port", True)], [Sample("0", "a harbor with ships", "What?", None)])
    assert rewards == pytest.approx(sbert_rewards(["ships in a port"], ["a harbor with ships"]))
    assert 0.0 < rewards[0] < 1.0
    assert judge.stats()["judge/failed_http_error"] == 2 and judge.stats()["judge/fallbacks"] == 1

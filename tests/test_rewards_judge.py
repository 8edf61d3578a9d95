"""The LLM judge against a real local HTTP server speaking the OpenAI chat-completions API.

``judge_server.JudgeServer`` is the test double for the paid OpenAI service. Fallbacks here use
``zero``; the ``sbert`` fallback is tested with the encoder in test_rewards_sbert.py.
"""
import logging
import time
from dataclasses import replace

import pytest
from judge_server import JudgeServer, Reply, prompt_text

from tinyrs.config import ConfigError
from tinyrs.grpo.rewards.inputs import Completion, Sample
from tinyrs.grpo.rewards.judge import DEFAULT_PROMPT, Judge, judge_unusable_reason, parse_judge_score
from tinyrs.settings import JudgeSettings

KEY_ENV = "TINYRS_TEST_JUDGE_API_KEY"
BASE = JudgeSettings(base_url=None, model="judge-model", api_key_env=KEY_ENV, timeout_s=5, max_retries=2, concurrency=4,
                     fallback="zero", allow_insecure_http=False, allowed_key_envs=[], prompt_template=None)


def answered(*answers):
    return [Completion(f"<reasoning>r</reasoning><answer>{a}</answer>", a, True) for a in answers]


def open_sample(reference, image="aGVsbG8="):
    return Sample("0", reference, "What is happening in the image?", image)


def make_judge(server, **changes):
    return Judge(replace(BASE, base_url=server.base_url, **changes), backoff_s=0.01)


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.mark.parametrize("reply, expected", [
    ("Score: 7", 7), ("**Score:** 10", 10), ("The score is 4.", 4), ("I would give it 8 out of 10.", 8),
    ("6/10 - mostly right", 6), ("9", 9), ("0", 0),
    ("Score: 11", None), ("score: 7.5", None), ("It mentions 3 ships; I say 8", None),
    ("Score: 7. Final score: 8", None), ("no idea", None), ("", None), (None, None),
])
def test_parse_judge_score(reply, expected):
    assert parse_judge_score(reply) == expected


def test_scores_with_question_reference_answer_and_image():
    with JudgeServer() as server:
        judge = make_judge(server)
        rewards = judge(answered("ships leave the harbor", "a forest fire"),
                        [open_sample("ships leave the harbor"), open_sample("ships leave the harbor", image=None)])
    assert rewards == [1.0, 0.2]
    assert judge.stats()["judge/fallbacks"] == 0
    first, second = sorted(server.requests, key=lambda body: "forest" in prompt_text(body))
    assert first["model"] == "judge-model"
    assert "Question: What is happening in the image?" in prompt_text(first)
    image_part = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,aGVsbG8="}}
    assert image_part in first["messages"][0]["content"]
    assert all(part["type"] == "text" for part in second["messages"][0]["content"])


def test_empty_answer_scores_zero_without_a_call():
    with JudgeServer() as server:
        rewards = make_judge(server)([Completion("<reasoning>r", None, False)], [open_sample("x")])
    assert rewards == [0.0] and server.requests == []


def test_timeout_falls_back_and_is_counted():
    with JudgeServer(lambda body, call: Reply("Score: 9", delay_s=1.5)) as server:
        judge = make_judge(server, timeout_s=0.2, max_retries=1)
        started = time.perf_counter()
        rewards = judge(answered("a"), [open_sample("a")])
        elapsed = time.perf_counter() - started
    assert rewards == [0.0]
    assert judge.failures["timeout"] == 2 and judge.fallbacks == 1
    assert elapsed < 1.4  # two 0.2 s timeouts, not the server's 1.5 s


def test_http_500_is_retried_then_falls_back():
    with JudgeServer(lambda body, call: Reply(status=500)) as server:
        judge = make_judge(server, max_retries=2)
        rewards = judge(answered("a", "b"), [open_sample("a"), open_sample("b")])
    assert rewards == [0.0, 0.0]
    assert len(server.requests) == 6
    stats = judge.stats()
    assert (stats["judge/failed_http_error"], stats["judge/fallbacks"], stats["judge/judged"]) == (6, 2, 2)
    assert stats["judge/failed_timeout"] == stats["judge/failed_bad_reply"] == 0


def test_client_errors_are_not_retried():
    with JudgeServer(lambda body, call: Reply(status=400)) as server:
        judge = make_judge(server, max_retries=3)
        assert judge(answered("a"), [open_sample("a")]) == [0.0]
    assert len(server.requests) == 1 and judge.failures["http_error"] == 1


@pytest.mark.parametrize("reply", [
    Reply("I cannot grade this."),
    Reply("Score: 15"),
    Reply(raw_body=b"this is not json"),
    Reply(raw_body=b'{"choices": []}'),
    Reply(raw_body=b'{"unexpected": true}'),
])
def test_garbage_replies_fall_back(reply):
    with JudgeServer(lambda body, call: reply) as server:
        judge = make_judge(server, max_retries=1)
        assert judge(answered("a"), [open_sample("a")]) == [0.0]
    assert judge.failures["bad_reply"] == 2 and judge.fallbacks == 1


def test_retry_then_success():
    replies = {0: Reply(status=503), 1: Reply("nonsense")}
    with JudgeServer(lambda body, call: replies.get(call, Reply("Score: 8"))) as server:
        judge = make_judge(server, max_retries=3)
        assert judge(answered("a"), [open_sample("a")]) == [pytest.approx(0.8)]
    assert len(server.requests) == 3
    assert judge.failures["http_error"] == 1 and judge.failures["bad_reply"] == 1 and judge.fallbacks == 0


def test_unreachable_server_is_a_connection_failure():
    with JudgeServer() as server:
        url = server.base_url
    judge = Judge(replace(BASE, base_url=url, max_retries=0), backoff_s=0.01)
    assert judge(answered("a"), [open_sample("a")]) == [0.0]
    assert judge.failures["connection"] == 1


def test_concurrency_is_bounded_at_the_server():
    with JudgeServer(lambda body, call: Reply("Score: 5", delay_s=0.15)) as server:
        judge = make_judge(server, concurrency=2)
        rewards = judge(answered(*"abcdef"), [open_sample(x) for x in "abcdef"])
    assert rewards == [0.5] * 6
    assert server.max_in_flight == 2


def test_key_comes_from_the_named_variable_and_is_never_logged(monkeypatch, caplog, capfd):
    secret = "sk-test-6f1d0c2e-do-not-print"
    monkeypatch.setenv(KEY_ENV, secret)
    caplog.set_level(logging.DEBUG)
    with JudgeServer(lambda body, call: Reply(status=500) if call == 0 else Reply("Score: 3")) as server:
        judge = make_judge(server, max_retries=0)
        judge(answered("a", "b"), [open_sample("a"), open_sample("b")])
    assert server.authorizations == [f"Bearer {secret}"] * 2
    out, err = capfd.readouterr()
    assert secret not in caplog.text + out + err
    assert caplog.text  # debug logging was on, so the check above looked at real log output
    assert secret not in repr(judge.__dict__)


def test_keyless_local_server_gets_a_placeholder_key():
    with JudgeServer() as server:
        make_judge(server)(answered("a"), [open_sample("a")])
    assert server.authorizations == ["Bearer no-key"]


def test_unusable_without_key_and_base_url(monkeypatch):
    assert KEY_ENV in judge_unusable_reason(BASE)
    assert judge_unusable_reason(replace(BASE, base_url="http://127.0.0.1:9/v1")) is None
    monkeypatch.setenv(KEY_ENV, "k")
    assert judge_unusable_reason(BASE) is None
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=KEY_ENV):
        Judge(BASE)(answered("a"), [open_sample("a")])


def test_prompt_template_is_configurable_and_checked():
    template = "Q={question} R={reference} A={answer}. Reply 'Score: N'."
    with JudgeServer(lambda body, call: Reply("Score: 6")) as server:
        judge = make_judge(server, prompt_template=template)
        assert judge(answered("boats"), [open_sample("ships")]) == [pytest.approx(0.6)]
    assert prompt_text(server.requests[0]) == "Q=What is happening in the image? R=ships A=boats. Reply 'Score: N'."
    assert "{answer}" in DEFAULT_PROMPT
    with pytest.raises(ConfigError, match="lacks"):
        Judge(replace(BASE, prompt_template="grade {answer}"))
    with pytest.raises(ConfigError, match="may only use"):
        Judge(replace(BASE, prompt_template="{question} {reference} {answer} {image}"))

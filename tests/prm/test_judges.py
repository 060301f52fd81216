"""Answer judges for step labelling: math-verify, and an LLM behind an OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mm_eureka_plugin.prm.judges import JudgeUnavailable
from mm_eureka_plugin.registry import resolve


def test_math_verify_judges_final_answers_and_refuses_an_unparseable_gold():
    judge = resolve("judge", "math_verify", workers=1)
    responses = ["<step>half</step><answer>0.5</answer>", "<answer>3</answer>", "<answer>\\frac{2}{4}</answer>"]
    assert judge(responses, "\\frac{1}{2}") == [True, False, True]
    assert judge.check_gold("\\frac{1}{2}") is None
    assert "cannot parse" in judge.check_gold("\\sqrt{")


class Endpoint(BaseHTTPRequestHandler):
    """A chat-completions endpoint: "yes" when the reference answer ends the solution; the first
    ``fail_first`` requests get a 500."""

    fail_first = 0
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers.get("Authorization"), body))
        if len(type(self).seen) <= type(self).fail_first:
            self.send_response(500)
            self.end_headers()
            return
        content = body["messages"][0]["content"]
        gold = content.split("Reference answer: ")[1].split("\n")[0]
        solution = content.split("Solution:\n")[1].split("\n\n")[0]
        reply = json.dumps({"choices": [{"message": {"content": "Yes." if solution.endswith(gold) else "no"}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    Endpoint.seen, Endpoint.fail_first = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_openai_compatible_judge_asks_the_endpoint_with_the_key(endpoint, monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-test")
    judge = resolve("judge", "openai_compatible", url=endpoint, model="qwen-judge", api_key_env="MY_JUDGE_KEY")
    assert judge(["so x = 7", "so x = 8", "x is 7"], "7") == [True, False, True]
    path, auth, body = Endpoint.seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert body["model"] == "qwen-judge" and body["temperature"] == 0.0


def test_openai_compatible_judge_retries_a_failing_endpoint(endpoint):
    Endpoint.fail_first = 2
    judge = resolve("judge", "openai_compatible", url=endpoint, model="m", retries=2, backoff_s=0.01, concurrency=1)
    assert judge(["it is 7"], "7") == [True]
    assert len(Endpoint.seen) == 3


def test_a_judge_endpoint_that_stays_down_raises_after_its_retries(endpoint):
    Endpoint.fail_first = 100
    judge = resolve("judge", "openai_compatible", url=endpoint, model="m", retries=1, backoff_s=0.01)
    with pytest.raises(JudgeUnavailable, match=r"/v1/chat/completions failed 2 times; last: HTTPError: 500"):
        judge(["it is 7"], "7")
    refused = resolve("judge", "openai_compatible", url="http://127.0.0.1:9/v1", model="m", retries=0)
    with pytest.raises(JudgeUnavailable, match="failed 1 times; last: ConnectionError"):
        refused(["it is 7"], "7")


@pytest.mark.parametrize(
    ("params", "message"),
    [({"url": "localhost:8000"}, "http"), ({"retries": -1}, "retries"), ({"prompt": "{gold} only"}, "response")],
)
def test_bad_judge_settings_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        resolve("judge", "openai_compatible", **{"url": "http://x/v1", "model": "m", **params})


def test_urls_are_logged_without_credentials():
    from mm_eureka_plugin.prm.judges import is_loopback, redact_url

    assert (
        redact_url("https://user:s3cret@api.example.com:8443/v1/chat?api_key=k")
        == "https://api.example.com:8443/v1/chat"
    )
    assert redact_url("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    assert is_loopback("http://localhost:8000") and is_loopback("http://127.0.0.2/v1") and is_loopback("http://[::1]/")
    assert not is_loopback("http://10.0.0.5:8000/v1") and not is_loopback("http://judge.internal/v1")


def test_a_failing_endpoint_is_logged_without_its_credentials_or_reply(endpoint, caplog):
    Endpoint.fail_first = 100
    secret_url = endpoint.replace("http://", "http://user:s3cret@") + "?api_key=k3y"
    judge = resolve("judge", "openai_compatible", url=secret_url, model="m", retries=1, backoff_s=0.01)
    with caplog.at_level(logging.WARNING), pytest.raises(JudgeUnavailable) as failed:
        judge(["it is 7"], "7")
    text = caplog.text + str(failed.value)
    assert "HTTPError: 500" in text and f"{endpoint}/chat/completions" in text
    assert "s3cret" not in text and "k3y" not in text and "user" not in text


def test_a_key_sent_over_plain_http_to_another_machine_is_warned_once(monkeypatch, caplog):
    import requests

    monkeypatch.setenv("MY_JUDGE_KEY", "sk-secret")
    monkeypatch.setattr(requests, "post", lambda *a, **k: (_ for _ in ()).throw(requests.ConnectionError("down")))
    remote = resolve(
        "judge",
        "openai_compatible",
        url="http://10.1.2.3:8000/v1",
        model="m",
        retries=1,
        backoff_s=0.0,
        api_key_env="MY_JUDGE_KEY",
        concurrency=1,
    )
    with caplog.at_level(logging.WARNING), pytest.raises(JudgeUnavailable):
        remote(["a", "b"], "7")
    assert caplog.text.count("the key in $MY_JUDGE_KEY is sent unencrypted") == 1
    assert "sk-secret" not in caplog.text
    caplog.clear()
    local = resolve(
        "judge", "openai_compatible", url="http://127.0.0.1:9/v1", model="m", retries=0, api_key_env="MY_JUDGE_KEY"
    )
    with caplog.at_level(logging.WARNING), pytest.raises(JudgeUnavailable):
        local(["a"], "7")
    assert "unencrypted" not in caplog.text

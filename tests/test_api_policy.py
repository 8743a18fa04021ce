"""The OpenAI-compatible policy against a real HTTP server on loopback (a small fake of the API)."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from shiftlab.cli import main
from shiftlab.evaluation import evaluate
from shiftlab.policies import Request, make_policy
from shiftlab.policies.api import OpenAIPolicy, PolicyError
from shiftlab.task import get_preset
from shiftlab.tasks.general_points.cards import rank_value
from shiftlab.tasks.general_points.expert import expert_answer


class FakeAPI(BaseHTTPRequestHandler):
    """Answers chat completions: GP-L prompts correctly (it reads the cards), anything else with a
    fixed text. It can fail the first N requests with HTTP 500 to exercise retries, or misbehave in
    one of the ways of `FAULTS` on every request."""

    failures_left = 0
    fault: str | None = None
    received: list[dict] = []
    sizes: list[int] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(raw)
        type(self).sizes.append(len(raw))
        type(self).received.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self._send(500, {"error": {"message": "try again"}})
            return
        fault = type(self).fault
        if fault == "silent":
            time.sleep(3)
            return
        if fault == "malformed-json":
            self._send_bytes(200, b'{"choices": [{"message": {"content": "unterminated')
            return
        if fault == "no-choices":
            self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"], "choices": []})
            return
        content = {"surrogate": "I think \ud800 so", "huge": "(" * 10_000_000}.get(fault) or self._answer(body["messages"])
        self._send(200, {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
        })

    @staticmethod
    def _answer(messages) -> str:
        first = messages[0]["content"]
        text = first if isinstance(first, str) else " ".join(p.get("text", "") for p in first)
        cards = re.search(r"Cards: (.+)", text)
        if not cards:
            return "I cannot see."
        ranks = [c.strip() for c in cards.group(1).split(",")]
        as_ten = "each count as 10" in text
        values = [rank_value(r, as_ten) for r in ranks]
        return expert_answer({"cards": ranks, "values": values, "target": 24})

    def _send(self, status, payload):
        self._send_bytes(status, json.dumps(payload).encode())

    def _send_bytes(self, status, data):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    FakeAPI.received, FakeAPI.sizes = [], []
    FakeAPI.failures_left, FakeAPI.fault = 0, None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeAPI)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_evaluation_through_the_api_reaches_100_percent(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    code = main(["eval", "--policy", f"openai:tiny@{server}", "--tasks", "gp-l,gp-l/rule-ood", "--episodes", "6",
                 "--out", str(tmp_path), "--quiet"])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["gp-l"]["success_rate"] == 1.0 and results["gp-l/rule-ood"]["success_rate"] == 1.0
    assert len(FakeAPI.received) == 12 and FakeAPI.received[0]["path"] == "/v1/chat/completions"
    assert FakeAPI.received[0]["auth"] == "Bearer sk-test-secret"
    assert "sk-test-secret" not in (tmp_path / "run.json").read_text()


def test_images_travel_as_data_urls(server):
    env = get_preset("gp-vl").make_env(resolution=64)
    observation, info = env.reset(seed=0)
    messages = get_preset("gp-vl").make_prompt().first_turn(observation, info)
    (response,) = OpenAIPolicy("tiny", server).generate([Request("gp-vl", messages, info)])
    assert response.text == "I cannot see."
    image_part, text_part = FakeAPI.received[0]["body"]["messages"][0]["content"]
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,") and text_part["type"] == "text"
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert np.array_equal(decoded, observation)


def test_server_errors_are_retried(server):
    FakeAPI.failures_left = 2
    policy = OpenAIPolicy("tiny", server, max_retries=3)
    (response,) = policy.generate([Request("gp-l", [{"role": "user", "content": "hi"}])])
    assert response.text == "I cannot see." and len(FakeAPI.received) == 3


def test_a_batch_runs_concurrently_and_keeps_its_order(server):
    policy = OpenAIPolicy("tiny", server, concurrency=4)
    requests = [Request("gp-l", [{"role": "user", "content": f"Cards: {c}, 6, 4, A\n each count as 10"}])
                for c in ("2", "3", "4", "5", "6")]
    texts = [r.text for r in policy.generate(requests)]
    assert [json.loads(t)["cards"][0] for t in texts] == ["2", "3", "4", "5", "6"]


def test_unreachable_endpoint_is_one_clear_line(tmp_path, capsys):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    policy = OpenAIPolicy("tiny", f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=5)
    with pytest.raises(PolicyError, match="did not answer"):
        policy.generate([Request("gp-l", [{"role": "user", "content": "hi"}])])
    assert main(["eval", "--policy", f"openai:tiny@http://127.0.0.1:{port}/v1", "--tasks", "gp-l",
                 "--episodes", "1", "--out", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "did not answer" in err and len(err.splitlines()) == 1


def test_partial_results_survive_an_endpoint_failure(server, tmp_path):
    policy = make_policy(f"openai:tiny@{server}")
    evaluate(["gp-l"], policy, 3, tmp_path, batch_size=1)
    assert len((tmp_path / "trajectories" / "gp-l.jsonl").read_text().splitlines()) == 3


def _eval(server, tmp_path, *extra):
    return main(["eval", "--policy", f"openai:tiny@{server}", "--tasks", "gp-l", "--episodes", "2",
                 "--out", str(tmp_path), "--quiet", *extra])


@pytest.mark.parametrize(("fault", "message"), [("malformed-json", "malformed response"),
                                                ("no-choices", "no choices")])
def test_a_malformed_reply_is_one_line_and_exit_1(fault, message, server, tmp_path, capsys):
    FakeAPI.fault = fault
    assert _eval(server, tmp_path, "--retries", "0") == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_a_silent_server_fails_within_the_timeout_given(server, tmp_path, capsys):
    FakeAPI.fault = "silent"
    started = time.perf_counter()
    assert _eval(server, tmp_path, "--timeout", "0.3", "--retries", "1") == 1
    assert time.perf_counter() - started < 2.5  # two tries of 0.3 s and the client's short backoff
    err = capsys.readouterr().err.strip()
    assert "did not answer within 0.3 s" in err and len(err.splitlines()) == 1, err
    assert len(FakeAPI.received) == 2 * 2  # two episodes, two tries each


def test_a_lone_surrogate_is_replaced_and_the_evaluation_goes_on(server, tmp_path):
    FakeAPI.fault = "surrogate"
    assert _eval(server, tmp_path) == 0
    assert len(FakeAPI.received) == 2 * 5  # every revision turn was sent, the surrogate's answer in it
    last = FakeAPI.received[-1]["body"]["messages"]
    assert any(m["role"] == "assistant" and m["content"] == "I think ? so" for m in last)
    record = json.loads((tmp_path / "trajectories" / "gp-l.jsonl").read_text().splitlines()[0])
    assert record["turns"][0]["response"] == "I think ? so"


def test_a_huge_answer_is_cut_before_it_is_scored_stored_or_sent_back(server, tmp_path):
    FakeAPI.fault = "huge"
    assert _eval(server, tmp_path, "--max-response-chars", "1000") == 0
    assert max(FakeAPI.sizes) < 20_000  # the last revision prompt carries four cut answers
    path = tmp_path / "trajectories" / "gp-l.jsonl"
    assert path.stat().st_size < 200_000
    turn = json.loads(path.read_text().splitlines()[0])["turns"][0]
    assert turn["response"] == "(" * 1000 and turn["response_chars"] == 10_000_000
    assert turn["outcome"] == "illegal_formula"
    assert json.loads((tmp_path / "run.json").read_text())["max_response_chars"] == 1000

"""shiftlab presets under `verifiers` (the optional extra): the taskset, the rewards' replay, and a real
episode through verifiers' own machinery (its interception server and `null` chat harness, which `uv`
sets up) against a loopback OpenAI-compatible server that plays the task's expert, once wrong first.
Skipped where verifiers is not installed; the episode test also needs `uv` and, the first time, PyPI
(uv installs the harness's chat program)."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

vf = pytest.importorskip("verifiers.v1")

from shiftlab.integrations.verifiers import (  # noqa: E402
    Replay,
    ShiftlabEnv,
    ShiftlabTaskset,
    load_environment,
)
from shiftlab.task import get_preset  # noqa: E402

EPISODES = 2
WRONG = '{"cards": ["A"], "formula": "1"}'


def _expert_answers(preset: str, episodes: int) -> list[str]:
    chosen = get_preset(preset)
    env = chosen.make_env(evaluation=True)
    try:
        return [chosen.expert_answer(env.reset(seed=i)[1]) for i in range(episodes)]
    finally:
        env.close()


def test_the_taskset_holds_one_task_per_episode():
    env = load_environment("gp-l/rule-ood", episodes=3, seed=5)
    assert isinstance(env, ShiftlabEnv) and isinstance(env.taskset, ShiftlabTaskset)
    tasks = list(env.taskset)
    assert [t.data.seed for t in tasks] == [5, 6, 7]
    assert {t.data.preset for t in tasks} == {"gp-l/rule-ood"}
    assert "24" in tasks[0].data.prompt_text
    assert len({t.key for t in tasks}) == 3


def test_the_reward_is_the_verifiers_on_a_replay():
    (task,) = list(load_environment("gp-l", episodes=1).taskset)
    (expert,) = _expert_answers("gp-l", 1)
    right = Replay(task.data, [expert])
    assert right.success and right.done and right.turns == 1 and right.reward > 0
    late = Replay(task.data, [WRONG, expert])
    assert late.success and late.turns == 2 and late.reward < right.reward
    wrong = Replay(task.data, ["no formula here; __import__('os').system('true')"] * 20)
    assert not wrong.success and wrong.done and wrong.reward < 0


class ExpertServer(BaseHTTPRequestHandler):
    """Chat completions (plain or streamed) that answer an episode's prompt with its expert answer,
    except the first answer of the episodes in `wrong_first`, which is wrong."""

    answers: dict[str, str] = {}
    wrong_first: set[str] = set()
    bodies: list[dict] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        messages = body["messages"]
        first = next(_text(m["content"]) for m in messages if m["role"] == "user")
        key = next((k for k in self.answers if k in first), None)
        answered = any(m["role"] == "assistant" for m in messages)
        text = WRONG if key in self.wrong_first and not answered else self.answers.get(key, "I cannot tell.")
        head = {"id": "c", "created": 0, "model": body.get("model", "m")}
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for delta, finish in (({"role": "assistant", "content": text}, None), ({}, "stop")):
                chunk = {**head, "object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            usage = {**head, "object": "chat.completion.chunk", "choices": [],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
            self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
            return
        data = json.dumps({**head, "object": "chat.completion", "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _text(content) -> str:
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


@pytest.mark.skipif(shutil.which("uv") is None, reason="verifiers' chat harness is set up with uv")
def test_an_episode_through_verifiers_steps_shiftlabs_env():
    env = load_environment("gp-l", episodes=EPISODES)
    tasks = list(env.taskset)
    experts = _expert_answers("gp-l", EPISODES)
    # Each episode's prompt names its cards: a line of the prompt identifies the episode.
    ExpertServer.answers = {_cards_line(t.data.prompt_text): a for t, a in zip(tasks, experts, strict=True)}
    ExpertServer.wrong_first = {_cards_line(tasks[1].data.prompt_text)}
    ExpertServer.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ExpertServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = vf.EvalClientConfig(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                                 api_key_var="SHIFTLAB_TEST_NO_KEY")
    context = vf.ModelContext(model="expert", client=client)

    async def play():
        async with env.serving():
            return [await env.run_slot(env.slots(task, 1)[0], context) for task in tasks]

    start = time.monotonic()
    try:
        episodes = asyncio.run(asyncio.wait_for(play(), 300))
    finally:
        server.shutdown()
        server.server_close()
    assert time.monotonic() - start < 300
    traces = [e.traces[0] for e in episodes]
    assert all(e.ok for e in episodes), [err.message for e in episodes for err in [*e.errors, *e.traces[0].errors]]
    assert [t.num_turns for t in traces] == [1, 2]  # the second episode revised its wrong answer
    assert [t.metrics["success"] for t in traces] == [1.0, 1.0]
    assert traces[1].rewards["episode_return"].score < traces[0].rewards["episode_return"].score
    assert traces[0].reward == traces[0].rewards["episode_return"].score > 0
    # The revision turn carried the verifier's feedback back to the model.
    revision = [b for b in ExpertServer.bodies if any(m["role"] == "assistant" for m in b["messages"])]
    assert revision and revision[-1]["messages"][-1]["role"] == "user"
    assert _feedback("gp-l", 1, WRONG) in _text(revision[-1]["messages"][-1]["content"])


def _feedback(preset: str, seed: int, answer: str) -> str:
    env = get_preset(preset).make_env(evaluation=True)
    try:
        env.reset(seed=seed)
        return env.step(answer)[4]["feedback"]
    finally:
        env.close()


def _cards_line(prompt: str) -> str:
    return next(line for line in prompt.splitlines() if line.startswith("Cards:"))

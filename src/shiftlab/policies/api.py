"""Any OpenAI-compatible chat endpoint as a policy: hosted models, or a local `vllm serve`.

Requests in a batch run concurrently (bounded by `concurrency`); the `openai` client retries
connection errors, rate limits and server errors with exponential backoff and enforces the timeout.
Images travel as PNG data URLs. The API key comes from the argument or OPENAI_API_KEY and is never
printed (the original evaluator printed it).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from shiftlab.errors import DependencyError
from shiftlab.messages import Message
from shiftlab.policies.base import Request, Response


class PolicyError(DependencyError):
    """A policy that cannot answer: an unreachable endpoint, a refused key, an unknown model."""


def image_data_url(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def to_openai(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Our messages in the Chat Completions format (image parts become image_url parts)."""
    out = []
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            content = [
                {"type": "image_url", "image_url": {"url": image_data_url(part["image"])}}
                if part.get("type") == "image" else {"type": "text", "text": part.get("text", "")}
                for part in content
            ]
        out.append({"role": message["role"], "content": content})
    return out


class OpenAIPolicy:
    """A chat endpoint as a policy. A server that fails (no answer within `timeout` seconds after
    `max_retries` retries, an error status, a body that is not a chat completion) raises PolicyError
    with one line saying what came back; a reply whose text is missing (a refusal, a tool call) is
    the empty answer, which the task's verifier scores like any other."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 3,
    ):
        # A base dependency, imported here all the same: it takes longer to import than the rest of the
        # CLI together, and only this policy uses it.
        import openai

        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not timeout > 0 or timeout == float("inf"):
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if max_retries < 0 or max_tokens < 1:
            raise ValueError("max_retries must be >= 0 and max_tokens >= 1")
        self.model = model
        self.base_url = base_url
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.name = f"openai:{model}" + (f"@{base_url}" if base_url else "")
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"  # local servers accept any key
        self._client = openai.OpenAI(api_key=key, base_url=base_url, timeout=self.timeout, max_retries=self.max_retries)
        self._openai = openai

    def _one(self, request: Request) -> Response:
        openai, where = self._openai, self.base_url or "the OpenAI API"
        try:
            completion = self._client.chat.completions.create(
                model=self.model,
                messages=to_openai(request.messages),
                max_tokens=self.max_tokens,
                temperature=self.temperature,
            )
        except openai.APITimeoutError:
            raise PolicyError(f"{self.name}: {where} did not answer within {self.timeout:g} s "
                              f"({self.max_retries + 1} tries; --timeout and --retries set these)") from None
        except (openai.APIConnectionError, openai.APIStatusError) as error:
            raise PolicyError(f"{self.name}: {where} did not answer: {type(error).__name__}: {_line(error)}") from None
        except (openai.APIError, ValueError) as error:  # a body that is not JSON, or not a completion
            raise PolicyError(f"{self.name}: {where} sent a malformed response: {type(error).__name__}: "
                              f"{_line(error)}") from None
        text = _completion_text(completion)
        if text is None:
            raise PolicyError(f"{self.name}: {where} sent a malformed response: no choices with a message "
                              f"(got {_line(repr(completion))})")
        return Response(text)

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        if len(requests) <= 1 or self.concurrency == 1:
            return [self._one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))


def _completion_text(completion: Any) -> str | None:
    """The first choice's text; None when the body has no choice with a message. Content that is not a
    string is read as a list of text parts (some servers send that) or as no text."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        return None
    message = getattr(choices[0], "message", None)
    if message is None:
        return None
    content = getattr(message, "content", None)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _line(value: Any, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "..."

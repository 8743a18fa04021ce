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

from shiftlab.policies.base import Request, Response
from shiftlab.prompts import Message


class PolicyError(RuntimeError):
    """A policy that cannot answer: an unreachable endpoint, a refused key, an unknown model."""


def image_data_url(image: np.ndarray) -> str:
    from PIL import Image

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
        import openai

        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.model = model
        self.base_url = base_url
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.concurrency = concurrency
        self.name = f"openai:{model}" + (f"@{base_url}" if base_url else "")
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"  # local servers accept any key
        self._client = openai.OpenAI(api_key=key, base_url=base_url, timeout=timeout, max_retries=max_retries)
        self._errors = (openai.APIConnectionError, openai.APIStatusError)

    def _one(self, request: Request) -> Response:
        try:
            completion = self._client.chat.completions.create(
                model=self.model,
                messages=to_openai(request.messages),
                max_tokens=self.max_tokens,
                temperature=self.temperature,
            )
        except self._errors as error:
            where = self.base_url or "the OpenAI API"
            raise PolicyError(f"{self.name}: {where} did not answer: {type(error).__name__}: {error}") from None
        return Response(completion.choices[0].message.content or "")

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        if len(requests) <= 1 or self.concurrency == 1:
            return [self._one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))

"""A local model served by offline vLLM (`vllm.LLM`) as a policy: the same prompts as `hf:`, answered by
vLLM's batched engine (paged KV cache, continuous batching), which on a GPU is many times faster for
evaluation and for sampling RL rollouts.

vLLM applies the model's own chat template (`LLM.chat`), so a prompt reads exactly as under `HFPolicy`;
images go in as PIL parts, which vLLM turns into its multimodal inputs for a vision-language model.
Each request gets its own sampling seed, derived from `seed`, its conversation and how often this
policy has seen that conversation, so reruns give the same answers and a repeated prompt (a GRPO group)
still gets fresh samples. Responses carry the prompt's and the answer's token ids and each answer
token's log-probability under the distribution it was sampled from (`processed_logprobs`: after
temperature and top-p, as `HFPolicy` reports them). `prompt_extras` stays empty: vLLM keeps the image
inputs inside its engine.

Answers are decoded from their token ids with the model's tokenizer, as `HFPolicy` decodes them.
`vllm` is imported at the top: this module is only imported by `make_policy` when a `vllm:` spec asks
for it, and a missing install becomes one line there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import vllm
from PIL import Image

from shiftlab.errors import InputError
from shiftlab.messages import Message, text_of
from shiftlab.policies.base import Request, Response

# vLLM's own dtype names for make_policy's.
DTYPES = {"auto": "auto", "fp32": "float32", "bf16": "bfloat16"}


class VLLMPolicy:
    """A model directory (or hub id) loaded once into a `vllm.LLM` engine.

    `temperature=0` is greedy decoding; otherwise tokens are sampled with `temperature` and `top_p`
    (top-k off, as in `HFPolicy`). `engine` goes to `vllm.LLM` as it is (`max_model_len`,
    `gpu_memory_utilization`, `enforce_eager`, `tensor_parallel_size`, ...). `llm` may be an engine
    that is already loaded (tests, or a trainer that owns one).
    """

    def __init__(
        self,
        model: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        dtype: str = "auto",
        llm: Any = None,
        **engine: Any,
    ):
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.name = f"vllm:{model}"
        self.reseed(seed)
        if llm is None:
            engine.setdefault("logprobs_mode", "processed_logprobs")
            llm = vllm.LLM(model=model, dtype=DTYPES.get(dtype, dtype), seed=int(seed), **engine)
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.is_vlm = bool(getattr(llm.model_config, "is_multimodal_model", False))

    def reseed(self, seed: int) -> None:
        """Start the sampling streams afresh from `seed` (an RL trainer reseeds at every step)."""
        self.seed = int(seed)
        self._seen: dict[bytes, int] = {}

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        if not requests:
            return []
        conversations = [self._chat_messages(r.messages) for r in requests]
        params = [self._sampling(c) for c in conversations]
        outputs = self.llm.chat(conversations, params, use_tqdm=False)
        responses = []
        for output in outputs:
            answer = output.outputs[0]
            ids = tuple(int(t) for t in answer.token_ids)
            logprobs = tuple(_chosen_logprobs(answer.logprobs, ids))
            # Decoded here rather than taken from vLLM's incremental detokenizer, which drops a trailing
            # piece of a character: the text is then exactly what HFPolicy and the trainers decode.
            text = self.tokenizer.decode(list(ids), skip_special_tokens=True)
            responses.append(Response(text, ids, logprobs, tuple(output.prompt_token_ids or ())))
        return responses

    def _sampling(self, conversation: list[dict[str, Any]]) -> Any:
        sample = self.temperature > 0
        return vllm.SamplingParams(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p if sample else 1.0,
            top_k=0,  # off, so the sampling distribution is exactly the one described
            seed=self._request_seed(conversation),
            logprobs=0,  # the chosen token's log-probability only
        )

    def _request_seed(self, conversation: list[dict[str, Any]]) -> int:
        key = hashlib.sha256(json.dumps(conversation, default=_image_digest, sort_keys=True).encode()).digest()
        seen = self._seen.get(key, 0)
        self._seen[key] = seen + 1
        digest = hashlib.sha256(b"%d:%d:" % (self.seed, seen) + key).digest()
        return int.from_bytes(digest[:8], "little") & (2**63 - 1)

    def _chat_messages(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        """Our messages as `LLM.chat` takes them: a text model gets plain strings; a vision-language
        model gets its image parts as PIL images, in order. Images for a text model are refused, as
        by `HFPolicy`."""
        out = []
        for message in messages:
            content = message["content"]
            if isinstance(content, str):
                out.append({"role": message["role"], "content": content})
                continue
            if not self.is_vlm:
                if any(part.get("type") == "image" for part in content):
                    raise InputError(f"{self.name} is a text-only model and cannot read the images of this task; "
                                     "use a vision-language model or a text task")
                out.append({"role": message["role"], "content": text_of(content)})
                continue
            parts = [{"type": "image_pil", "image_pil": _to_pil(part["image"])} if part.get("type") == "image"
                     else {"type": "text", "text": part.get("text") or ""} for part in content]
            out.append({"role": message["role"], "content": parts})
        return out


def _chosen_logprobs(logprobs: Any, ids: Sequence[int]) -> list[float]:
    """The log-probability of each generated token, from vLLM's per-position {token id: Logprob}
    (empty when the engine returned none)."""
    if not logprobs:
        return []
    return [float(position[token].logprob) for position, token in zip(logprobs, ids, strict=False)]


def _image_digest(value: Any) -> str:
    """JSON for a PIL image inside a conversation, for the sampling seed: its bytes' digest."""
    if isinstance(value, Image.Image):
        return hashlib.sha256(value.tobytes()).hexdigest()
    raise TypeError(f"cannot key a sampling seed on {type(value).__name__}")


def _to_pil(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")

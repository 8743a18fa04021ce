"""Local Hugging Face models as policies: the model trained with SFT/RL, answering the same prompts.

Batched generation pads on the left so every row's new tokens start at the same column, and returns
each generated token with its log-probability under the distribution it was drawn from, which RL
needs. A prompt that repeats within a batch (the episodes of a GRPO group) is read once: its cache
is computed for the distinct prompts and copied to every row that repeats it. torch and transformers are imported here only, so `import shiftlab` stays light.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import BatchEncoding, DynamicCache, PreTrainedModel

from shiftlab.errors import InputError
from shiftlab.messages import Message, text_of
from shiftlab.models.attention import fast_cpu_decoding
from shiftlab.models.loading import is_vision_language, load_pretrained, old_cache_name
from shiftlab.policies.base import Request, Response

# Inputs that are the prompt's tokens; the processor's other outputs belong to its images.
TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")
# Below this many shared leading tokens, computing the prefix apart saves less than the extra call costs.
MIN_SHARED_PREFIX = 16


class HFPolicy:
    """A local (or cached hub) model, text-only or vision-language, generating in batches.

    `temperature=0` is greedy decoding; otherwise tokens are sampled with `temperature` and `top_p`
    (top-k is switched off so the sampling distribution is exactly the one described). Sampling is
    seeded per batch from `seed`, the batch's prompts and how often this policy has seen that batch
    before, so reruns and resumed runs give the same answers without touching the global torch RNG,
    while a batch that repeats (a GRPO group split over two batches) still gets fresh samples.
    """

    def __init__(
        self,
        model: str | PreTrainedModel,
        processor_or_tokenizer: Any = None,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        batch_size: int = 16,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype = "auto",
        seed: int = 0,
    ):
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be at least 1")
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.batch_size = int(batch_size)
        self.reseed(seed)

        if isinstance(model, str):
            self.model, processor = load_pretrained(model, processor_or_tokenizer, dtype)
            self.name = f"hf:{model}"
            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            self.model.to(self.device)
        else:
            self.model = model
            processor = processor_or_tokenizer
            if processor is None:
                raise ValueError("HFPolicy(model) with a model object needs its processor or tokenizer")
            self.name = f"hf:{getattr(model, 'name_or_path', '') or type(model).__name__}"
            # A model object may already be placed (e.g. by device_map); only move it when asked.
            if device is not None:
                self.model.to(device)
            self.device = self.model.device
        self.model.eval()
        fast_cpu_decoding(self.model)
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.is_vlm = is_vision_language(self.model.config)
        self._eos_ids = _eos_ids(self.model, self.tokenizer)

    def reseed(self, seed: int) -> None:
        """Start the sampling streams afresh from `seed` (an RL trainer reseeds at every step)."""
        self.seed = int(seed)
        self._seen: dict[bytes, int] = {}

    def prompt_inputs(self, messages: Sequence[Message]) -> dict[str, Any]:
        """One conversation as the model's inputs (token ids, and pixel values when it has images), as
        generation reads it alone; each Response carries the same as `prompt_ids` and `prompt_extras`."""
        messages, images = self._template_messages(messages)
        text = self._chat_template(messages)
        if images:
            return dict(self.processor(text=[text], images=images, return_tensors="pt", add_special_tokens=False))
        return dict(self.tokenizer([text], return_tensors="pt", add_special_tokens=False))

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        out: list[Response] = []
        for start in range(0, len(requests), self.batch_size):
            out.extend(self._generate_batch(requests[start : start + self.batch_size]))
        return out

    def _generate_batch(self, requests: Sequence[Request]) -> list[Response]:
        texts, images, counts = [], [], []
        for request in requests:
            messages, request_images = self._template_messages(request.messages)
            texts.append(self._chat_template(messages))
            images.extend(request_images)
            counts.append(len(request_images))
        # The chat template already writes the special tokens (BOS etc.); don't add them twice.
        prefix = 0
        if images:
            inputs = self.processor(
                text=texts, images=images, return_tensors="pt", padding=True, add_special_tokens=False
            )
        else:
            inputs, prefix = self._text_inputs(texts)
        # Each request's prompt as generation reads it, for a trainer to score the answer under: taken
        # outside inference mode (so it can be backpropagated through) and on the CPU.
        real = inputs["attention_mask"].bool()
        prompt_ids = [tuple(row[keep].tolist()) for row, keep in zip(inputs["input_ids"], real, strict=True)]
        extras = per_request_inputs(inputs, counts) if images else [{} for _ in requests]
        inputs = inputs.to(self.device)
        sample = self.temperature > 0
        params: dict[str, Any] = {"do_sample": sample}
        if sample:
            params.update(temperature=self.temperature, top_p=self.top_p, top_k=0)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices), old_cache_name():
            cache = self._prompt_cache(inputs, texts, prefix) if not images else None
            torch.manual_seed(self._batch_seed(texts))
            output = self.model.generate(
                **inputs,
                **({"past_key_values": cache} if cache is not None else {}),
                **params,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                output_scores=True,
                return_dict_in_generate=True,
            )
            # With output_scores the scores are the processed logits (after temperature/top-p), so their
            # log-softmax is the distribution each token was actually drawn from.
            logprobs = self.model.compute_transition_scores(
                output.sequences, output.scores, normalize_logits=True
            )
        new_tokens = output.sequences[:, inputs["input_ids"].shape[1] :]
        responses = []
        rows = zip(new_tokens.tolist(), logprobs.float().cpu().tolist(), prompt_ids, extras, strict=True)
        for ids, lps, prompt, images_in in rows:
            end = next((i + 1 for i, t in enumerate(ids) if t in self._eos_ids), len(ids))
            ids, lps = ids[:end], lps[:end]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            responses.append(Response(text, tuple(ids), tuple(lps), prompt, images_in))
        return responses

    def _text_inputs(self, texts: Sequence[str]) -> tuple[BatchEncoding, int]:
        """Token ids and attention mask of a batch of prompts, and how many leading tokens all of them
        share. The rows are laid out as [shared prefix | padding | own suffix], so the prefix is at the
        same columns in every row and its cache can be computed once; positions follow the mask, so the
        padding in the middle changes nothing the model computes. No shared prefix: plain left padding."""
        rows = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        prefix = _common_prefix(rows) if len(rows) > 1 else 0
        prefix = min(prefix, min(len(r) for r in rows) - 1)  # every row keeps a token of its own
        if prefix < MIN_SHARED_PREFIX:
            prefix = 0
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            suffix = len(row) - prefix
            ids[i, :prefix], mask[i, :prefix] = torch.tensor(row[:prefix], dtype=torch.long), 1
            ids[i, width - suffix :], mask[i, width - suffix :] = torch.tensor(row[prefix:], dtype=torch.long), 1
        return BatchEncoding({"input_ids": ids, "attention_mask": mask}), prefix

    def _prompt_cache(self, inputs: Any, texts: Sequence[str], prefix: int) -> Any:
        """The key/value cache of every prompt but its last token, so generation reads one token per row.
        The shared prefix is computed once, each distinct prompt's own part once more (the episodes of a
        GRPO group repeat theirs), and the result copied to the rows. None when nothing is shared."""
        distinct: dict[str, int] = {}
        index = [distinct.setdefault(text, len(distinct)) for text in texts]
        if (len(distinct) == len(texts) and not prefix) or inputs["input_ids"].shape[1] < 2:
            return None
        rows = [texts.index(text) for text in distinct]
        ids, mask = inputs["input_ids"][rows, :-1], inputs["attention_mask"][rows, :-1]
        cache = DynamicCache(config=self.model.config)
        if prefix:
            self.model(input_ids=ids[:1, :prefix], past_key_values=cache, use_cache=True, logits_to_keep=1)
            cache.batch_repeat_interleave(len(rows))
        if ids.shape[1] > prefix:
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, prefix:]
            self.model(input_ids=ids[:, prefix:], attention_mask=mask, position_ids=positions,
                       past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache.batch_select_indices(torch.tensor(index, device=ids.device))
        return cache

    def _batch_seed(self, texts: Sequence[str]) -> int:
        key = hashlib.sha256("\x00".join(texts).encode()).digest()
        seen = self._seen.get(key, 0)
        self._seen[key] = seen + 1
        digest = hashlib.sha256(b"%d:%d:" % (self.seed, seen) + key).digest()
        return int.from_bytes(digest[:8], "little") & (2**63 - 1)

    def _template_messages(self, messages: Sequence[Message]) -> tuple[list[Message], list[Image.Image]]:
        """Messages in the shape chat templates expect: image parts become bare {"type": "image"}
        placeholders, and the images go to the processor separately, in order."""
        out, images = [], []
        for message in messages:
            content = message["content"]
            if isinstance(content, str):
                out.append({"role": message["role"], "content": content})
                continue
            parts = []
            for part in content:
                if part.get("type") == "image":
                    images.append(_to_pil(part["image"]))
                    parts.append({"type": "image"})
                else:
                    parts.append({"type": "text", "text": part["text"]})
            if not self.is_vlm:
                if images:
                    raise InputError(f"{self.name} is a text-only model and cannot read the images of this task; "
                                     "use a vision-language model or a text task")
                out.append({"role": message["role"], "content": text_of(content)})
            else:
                out.append({"role": message["role"], "content": parts})
        return out, images

    def _chat_template(self, messages: list[Message]) -> str:
        owner = self.processor if getattr(self.processor, "chat_template", None) else self.tokenizer
        return owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def per_request_inputs(inputs: Mapping[str, Any], images_per_request: Sequence[int]) -> list[dict[str, Any]]:
    """Each request's own part of a batch's image inputs, as the processor would give it for that request
    alone. Processors stack the images of all requests in request order along the first dimension: a row
    per image (LLaVA's pixel values, image sizes), or a row per patch where `image_grid_thw` gives each
    image's patches (Qwen-VL). A [batch, prompt] input gives the request its row without padding, any
    other batch-first one its row; a request without images gets none, and an input that fits no rule
    is left out."""
    real = inputs["attention_mask"].bool()
    counts = list(images_per_request)
    grid = inputs.get("image_grid_thw")
    patches = None
    if grid is not None:
        per_image = grid.prod(-1).tolist()
        bounds = np.cumsum([0, *counts])
        patches = [sum(per_image[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    out: list[dict[str, Any]] = [{} for _ in counts]
    for key, value in inputs.items():
        if key in TOKEN_KEYS or not isinstance(value, torch.Tensor) or value.dim() == 0:
            continue
        if value.dim() >= 2 and value.shape[:2] == real.shape:
            parts = [row[keep].unsqueeze(0) for row, keep in zip(value, real, strict=True)]
        elif value.shape[0] == sum(counts):
            parts = value.split(counts)
        elif patches is not None and value.shape[0] == sum(patches):
            parts = value.split(patches)
        elif value.shape[0] == len(counts):
            parts = value.split(1)
        else:
            continue
        for extras, part, count in zip(out, parts, counts, strict=True):
            if count:
                extras[key] = part
    return out


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    first, n = rows[0], min(len(r) for r in rows)
    for i in range(n):
        token = first[i]
        if any(r[i] != token for r in rows):
            return i
    return n


def _eos_ids(model: PreTrainedModel, tokenizer: Any) -> set[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = set(ids if isinstance(ids, list) else [] if ids is None else [ids])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _to_pil(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")

"""Which tokens of a conversation the assistant wrote, for any chat template.

TRL's assistant-only loss needs `{% generation %}` markers in the template, and patches only the
templates it knows. Most downloaded checkpoints have neither (SmolLM2's ChatML does not). The
assistant's tokens can still be found by rendering: the text a turn adds is the difference between
the conversation rendered up to that turn with the generation prompt and rendered through it. Only a
template that rewrites earlier turns as the conversation goes on defeats this, and that is reported.
"""

from __future__ import annotations

from typing import Any

from shiftlab.training.config import ConfigError


def template_marks_assistant(tokenizer: Any) -> bool:
    """Whether TRL can mask the assistant's tokens itself: the template has generation markers, or
    TRL has a marked version of it."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    template = tokenizer.chat_template
    if not template:
        return False
    if has_generation_markers(template):
        return True
    try:
        return get_training_chat_template(tokenizer) is not None
    except ValueError:
        return False


def assistant_spans(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns (each turn's text and
    its end-of-turn token; the separator the template writes after it is not the assistant's)."""
    def render(part: list[dict[str, Any]], prompt: bool) -> str:
        return tokenizer.apply_chat_template(part, tokenize=False, add_generation_prompt=prompt)

    text = render(messages, False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or i == 0:
            continue
        before, through = render(messages[:i], True), render(messages[: i + 1], False)
        if not (through.startswith(before) and text.startswith(through)):
            raise ConfigError("the chat template renders earlier turns differently as a conversation goes on, so "
                              "the assistant's tokens cannot be found for `loss: assistant`; use `loss: completion`")
        end = len(through.rstrip())
        if end > len(before):
            spans.append((len(before), end))
    return text, spans


def tokenize_with_masks(row: dict[str, Any], tokenizer: Any) -> dict[str, list[int]]:
    """One conversation row as `input_ids` and `assistant_masks` (1 on the assistant's tokens), the
    columns TRL's SFTTrainer turns into labels."""
    text, spans = assistant_spans(tokenizer, row["messages"])
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(lo <= start < hi for lo, hi in spans)) for start, _ in encoded["offset_mapping"]]
    if not any(mask):
        raise ConfigError("a training row has no assistant tokens after tokenizing; check the data's messages")
    return {"input_ids": list(encoded["input_ids"]), "assistant_masks": mask}

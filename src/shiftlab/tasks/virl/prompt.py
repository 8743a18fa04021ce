"""Prompts for V-IRL navigation: the instructions, the action space, what was seen and done so far.

As in the paper, the conversation starts afresh after every correct move (the history then lives in
the observation/action lines of the prompt), while a rejected answer is followed by the verifier's
feedback in the same conversation. The street-view grid is attached to the first user message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from shiftlab.messages import Message, revision_turn, user_turn

_ACTION_HELP = {
    "forward()": "walk ahead to the next point",
    "stop()": "you have reached the destination",
}


@dataclass(frozen=True)
class VirlPrompt:
    """`example=True` adds a worked answer (for API models not fine-tuned on the format). `compact=True`
    gives the same instructions, actions, history and answer keys without the explanations: for
    small models trained from scratch, where the prompt is most of every forward pass."""

    example: bool = False
    compact: bool = False

    def task_text(self, info: Mapping, image: bool) -> str:
        turns = [a for a in info["action_space"] if a.startswith("turn_direction")]
        words = ", ".join(a[len("turn_direction(") : -1] for a in turns)
        if self.compact:
            views = "Views: front, right, back, left (2x2 grid).\n" if image else ""
            route, history = info["instruction"].rstrip("\n"), info["observation_history"].rstrip("\n")
            return (f"{views}Route:\n{route}\nActions: forward(), turn_direction(x) for x in {words}, stop()\n"
                    f'{history}\nJSON: "current observation", "current instruction", "action".')
        lines = [
            "You are walking through a city, following route instructions to a destination.",
        ]
        if image:
            lines.append(
                "You see your surroundings as four street-view pictures in a 2x2 grid: front (top left), "
                "right (top right), back (bottom left) and left (bottom right). Check whether the places "
                "named in the instructions are in sight."
            )
        lines += [
            "First decide which instruction sentence you are carrying out, then choose the action for "
            "your current observation.",
            "",
            "Instructions:",
            info["instruction"].rstrip("\n"),
            "",
            "Actions:",
            f"- forward(): {_ACTION_HELP['forward()']}",
            f"- turn_direction(x): turn to face x and walk on, where x is one of: {words}",
            f"- stop(): {_ACTION_HELP['stop()']}",
            "",
            "Observations (O) and actions (A) so far:",
            info["observation_history"].rstrip("\n"),
            "",
            "Reply with a JSON object with three keys:",
            '- "current observation": what you observe now (landmarks, and whether you are at an intersection)',
            '- "current instruction": the instruction sentence you are carrying out',
            '- "action": one action from the list above',
        ]
        text = "\n".join(lines)
        if self.example:
            text += (
                '\n\nExample answer:\n{"current observation": "Corner Bakery is on your left; You observe an '
                'intersection", "current instruction": "Turn right to face east.", "action": '
                f'"{turns[0] if turns else "forward()"}"}}\n\nOutput only the JSON object.'
            )
        return text

    def first_turn(self, observation: Any, info: Mapping) -> list[Message]:
        return user_turn(self.task_text(info, isinstance(observation, np.ndarray)), observation)

    def next_turn(self, messages: list[Message], response: str, observation: Any, info: Mapping) -> list[Message]:
        """After a correct move: a fresh conversation at the new point. After a rejected answer: the
        answer and the feedback are appended."""
        if info.get("outcome") == "correct_action":
            return self.first_turn(observation, info)
        rejected = "Rejected." if self.compact else "Your answer was rejected."
        return revision_turn(messages, response, f"{rejected} {info['feedback']}")

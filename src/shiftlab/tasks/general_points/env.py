"""GeneralPoints: reach the target number with the cards on the table (arXiv 2501.17161, Sec. 4.1).

One environment covers every variant of the paper through constructor options: the face-card rule
(J/Q/K as 10, or as 11/12/13), the suit colours, text or image observations. An episode is one hand;
each `step` submits a whole response, which the verifier scores, until the answer is correct or the
attempts run out (the paper's "sequential revision" with a verification budget).

What the next prompt contains (earlier answers, the feedback) is the prompt module's business; the
environment only deals, verifies and reports.
"""

from __future__ import annotations

import string
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from shiftlab.tasks.general_points.cards import FACE_RANKS, RANKS, SUITS, SUITS_BY_COLOR, rank_value
from shiftlab.tasks.general_points.render import render_table
from shiftlab.tasks.general_points.solver import is_solvable, solutions
from shiftlab.tasks.general_points.verifier import Outcome, RewardTable, Verdict, verify
from shiftlab.tasks.response import MAX_RESPONSE_CHARS

OBSERVATIONS = ("text", "image")
MAX_CARDS = 6
_DEAL_BATCH = 4  # candidate hands per RNG call: one call almost always yields a solvable hand
_MAX_DEALS = 4096
_RANK_INDEX = {rank: i for i, rank in enumerate(RANKS)}


class GeneralPointsEnv(gym.Env):
    """The 24-points card game as text (GP-L) or as an image of the cards (GP-VL).

    Args:
        observation: "text" (the ranks, e.g. "A, 3, K, 6") or "image" (an RGB table of cards).
        face_cards_as_ten: J, Q, K count as 10 (the training rule) or as 11, 12, 13 (rule shift).
        suit_color: suits drawn from "black" (spades, clubs), "red" (hearts, diamonds) or "mixed".
        target: the number the formula must equal.
        num_cards: cards per hand (1 to 6).
        max_attempts: scored answers per episode (the paper's verification budget).
        resolution: side of the square image observation, in pixels.
        require_face_card: deal at least one J/Q/K; default: only under the 11/12/13 rule, as the
            paper's rule-shift evaluation does.
        rewards: reward per verifier outcome; the paper's table by default.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 1}

    def __init__(
        self,
        observation: str = "text",
        face_cards_as_ten: bool = True,
        suit_color: str = "mixed",
        target: int = 24,
        num_cards: int = 4,
        max_attempts: int = 5,
        resolution: int = 448,
        require_face_card: bool | None = None,
        rewards: RewardTable | None = None,
        render_mode: str | None = None,
    ):
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, not {observation!r}")
        if suit_color not in SUITS_BY_COLOR:
            raise ValueError(f"suit_color must be one of {tuple(SUITS_BY_COLOR)}, not {suit_color!r}")
        if not isinstance(num_cards, int) or not 1 <= num_cards <= MAX_CARDS:
            raise ValueError(f"num_cards must be an int from 1 to {MAX_CARDS}, not {num_cards!r}")
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be a positive int, not {max_attempts!r}")
        if not isinstance(target, (int, np.integer)) or isinstance(target, bool):
            raise ValueError(f"target must be an int, not {target!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', not {render_mode!r}")
        if rewards is not None and not isinstance(rewards, RewardTable):
            raise ValueError(f"rewards must be a RewardTable, not {rewards!r}")
        if not isinstance(resolution, (int, np.integer)) or isinstance(resolution, bool) or not 64 <= resolution <= 4096:
            raise ValueError(f"resolution must be from 64 to 4096 pixels, not {resolution!r}")
        self.observation_kind = observation
        self.face_cards_as_ten = bool(face_cards_as_ten)
        self.suit_color = suit_color
        self.target = int(target)
        self.num_cards = num_cards
        self.max_attempts = max_attempts
        self.resolution = int(resolution)
        self.require_face_card = (not self.face_cards_as_ten) if require_face_card is None else bool(require_face_card)
        self.rewards = rewards or RewardTable()
        self.render_mode = render_mode

        if observation == "text":
            self.observation_space = spaces.Text(
                min_length=1, max_length=4 * num_cards, charset="".join(dict.fromkeys("".join(RANKS) + ", "))
            )
        else:
            self.observation_space = spaces.Box(0, 255, (self.resolution, self.resolution, 3), np.uint8)
        self.action_space = spaces.Text(min_length=0, max_length=MAX_RESPONSE_CHARS, charset=string.printable)

        self._allowed_suits = SUITS_BY_COLOR[suit_color]
        self._rank_values = [rank_value(r, self.face_cards_as_ten) for r in RANKS]
        self._cards: tuple[str, ...] = ()
        self._suits: tuple[str, ...] = ()
        self._values: tuple[int, ...] = ()
        self._attempts_left = 0
        self._partial_paid = 0.0
        self._done = True
        self._image: np.ndarray | None = None

    # -- dealing -------------------------------------------------------------------------------

    def _deal(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Ranks with replacement (as the original), redrawn until the hand is solvable; then suits.

        Each candidate is a row of 2n+1 uniforms (n ranks, n suits, the face-card slot), drawn a
        batch at a time: one RNG call per reset keeps `reset` in microseconds.
        """
        n, face = self.num_cards, len(FACE_RANKS)
        first_face = len(RANKS) - face
        suits = self._allowed_suits
        for _ in range(_MAX_DEALS // _DEAL_BATCH):
            for row in self.np_random.random((_DEAL_BATCH, 2 * n + 1)).tolist():
                ranks = [int(u * len(RANKS)) for u in row[:n]]
                if self.require_face_card:
                    slot = int(row[2 * n] * n)
                    ranks[slot] = first_face + int(row[slot] * face)
                if is_solvable([self._rank_values[r] for r in ranks], self.target):
                    return tuple([RANKS[r] for r in ranks]), tuple([suits[int(u * len(suits))] for u in row[n : 2 * n]])
        raise ValueError(
            f"no solvable hand found in {_MAX_DEALS} deals: is target={self.target} reachable with "
            f"{self.num_cards} cards under this rule?"
        )

    def _hand_from_options(self, options: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
        ranks = tuple(str(c) for c in options["cards"])
        if len(ranks) != self.num_cards or any(r not in RANKS for r in ranks):
            raise ValueError(f"options['cards'] must be {self.num_cards} ranks from {RANKS}, not {list(ranks)}")
        suits = tuple(options.get("suits") or [self._allowed_suits[0]] * self.num_cards)
        if len(suits) != self.num_cards or any(s not in SUITS for s in suits):
            raise ValueError(f"options['suits'] must be {self.num_cards} suits from {SUITS}, not {list(suits)}")
        return ranks, suits

    # -- gymnasium API ---------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Deal a new solvable hand. options={"cards": [...], "suits": [...]} sets the hand instead."""
        super().reset(seed=seed)
        if options and options.get("cards") is not None:
            self._cards, self._suits = self._hand_from_options(options)
        else:
            self._cards, self._suits = self._deal()
        self._values = tuple([self._rank_values[_RANK_INDEX[r]] for r in self._cards])
        self._attempts_left = self.max_attempts
        self._partial_paid = 0.0
        self._done = False
        self._image = None
        return self._observation(), self._info()

    def step(self, action: Any):
        if self._done:
            raise ResetNeeded("the episode is over (solved or out of attempts); call reset() first")
        verdict = verify(
            action,
            self._values,
            self.target,
            cards=self._cards,
            check_recognition=self.observation_kind == "image",
            rewards=self.rewards,
        )
        self._attempts_left -= 1
        reward, feedback = self._episode_reward(verdict)
        terminated = verdict.success
        truncated = not terminated and self._attempts_left == 0
        self._done = terminated or truncated
        info = self._info()
        info["feedback"] = feedback
        info["outcome"] = verdict.outcome.value
        if verdict.cards_correct is not None:
            info["cards_correct"] = verdict.cards_correct
        if self._done:
            info["success"] = terminated
        return self._observation(), reward, terminated, truncated, info

    def _episode_reward(self, verdict: Verdict) -> tuple[float, str]:
        """Partial credit is an advance on the correct reward, paid once per episode: a repeated
        partial answer earns 0 and a correct answer after one earns the rest. No episode then returns
        more than solving at the first attempt (partial, partial, ..., correct would otherwise earn
        up to 4 x 1 + 5 = 9, and an RL policy would learn to hold back the last ')')."""
        if verdict.outcome is Outcome.PARTIAL:
            if self._partial_paid:
                return 0.0, verdict.feedback + " (Partial credit is given once per episode.)"
            self._partial_paid = verdict.reward
            return verdict.reward, verdict.feedback
        if verdict.outcome is Outcome.CORRECT:
            return verdict.reward - self._partial_paid, verdict.feedback
        return verdict.reward, verdict.feedback

    def render(self):
        if self.render_mode == "rgb_array" and self._cards:
            return self._table_image().copy()
        return None

    # -- helpers ---------------------------------------------------------------------------------

    def _observation(self):
        # Every call returns new data (gymnasium's contract): users may keep or edit what they get.
        if self.observation_kind == "image":
            return self._table_image().copy()
        return ", ".join(self._cards)

    def _table_image(self) -> np.ndarray:
        if self._image is None:
            self._image = render_table(self._cards, self._suits, self.resolution)
        return self._image

    def _info(self) -> dict[str, Any]:
        return {
            "cards": list(self._cards),
            "suits": list(self._suits),
            "values": list(self._values),
            "target": self.target,
            "face_cards_as_ten": self.face_cards_as_ten,
            "num_solutions": len(self.solutions),
            "attempts_left": self._attempts_left,
        }

    @property
    def solutions(self) -> tuple[str, ...]:
        """Every solution of the current hand (fewest parentheses, shortest first)."""
        return solutions(self._values, self.target)

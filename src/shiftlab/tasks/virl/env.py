"""V-IRL street navigation (arXiv 2501.17161, Sec. 4.2): follow route instructions point by point.

An episode is one route. At every rail point the agent answers with its current observation, the
instruction sentence it is executing and an action; a correct action moves it to the next point, a
wrong one costs an attempt, and running out of attempts at a point ends the episode as a failure.
Observations are the oracle text (V-IRL-L) or a 2x2 grid of street views (V-IRL-VL). The rule shift
swaps absolute compass actions for relative left/right ones; the visual shift moves to new cities.

The original's quirks are fixed by default; `Compat.original()` brings every one back for exact
replication, and each is a named flag (see virl.md §4 for the Q-numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from shiftlab.tasks.response import MAX_RESPONSE_CHARS
from shiftlab.tasks.virl.rail import (
    ACTION_SPACES,
    STOP,
    Rail,
    RailOptions,
    action_set,
    build_rail,
    history_lines,
)
from shiftlab.tasks.virl.scene import GRID_GUTTER
from shiftlab.tasks.virl.sources import ProceduralSource, ReleasedSource, RouteSource
from shiftlab.tasks.virl.verifier import RewardTable, verify
from shiftlab.tasks.virl.world import CITIES

OBSERVATIONS = ("text", "image")
ROUTE_ORDERS = ("random", "sequential")
ALL_CITIES = "all"
VL_OBSERVATION = "You observe an image of 4 views"


@dataclass(frozen=True)
class Compat:
    """One flag per quirk of the original; the defaults are the fixes."""

    wrap_turns: bool = True  # Q1: relative turns wrap the angle difference into (-180, 180]
    intersection_from_landmark_only: bool = False  # Q2: the original's wrong intersection check
    legacy_grid_layout: bool = False  # Q3: views at h-135, h-45, h+45, h+135 instead of front/right/back/left
    include_endpoint: bool = False  # Q6: the last forward candidate lands on the milestone
    advance_on_short_legs: bool = True  # Q7: a leg of 5 m or less still consumes its sentence
    unscored_extra_call: bool = False  # Q10: one more call, not evaluated, ends a point's attempts with -1
    strict_parsing: bool = False  # Q12: exact regex and case-sensitive action compare
    literal_double_braces: bool = False  # Q20: "{{ }}" in the feedback's format reminder

    @classmethod
    def original(cls) -> Compat:
        return cls(False, True, True, True, False, True, True, True)


class VirlEnv(gym.Env):
    """V-IRL navigation over procedural cities (default) or the released data (`data_dir`).

    Args:
        observation: "text" (the oracle observation) or "image" (a 2x2 street-view grid).
        action_space: "absolute" (compass turns) or "relative" (left/right turns; the rule shift).
        data_dir: a directory in the released layout; absent means procedural cities.
        city: a procedural city, or "all" for every city (the visual-shift sets).
        split: "train", "test" or "ood": disjoint districts of each city.
        routes_per_city: size of the route pool of each city.
        route_lengths: "train" (3-6 milestones) or "mini" (2-3, like the V-IRL mini benchmark).
        route_order: "random" (a route drawn at each reset) or "sequential" (route 0, 1, 2, ...).
        max_attempts: answers allowed at each point (the paper's verification budget, 2).
        resolution: side of each street-view tile in pixels; the grid is 2*resolution+5.
        straight_line_length, drop_rate, relocation: how legs are cut into forward points.
        compat: quirks of the original to reproduce; `Compat.original()` or "original" for all.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 1}

    def __init__(
        self,
        observation: str = "text",
        action_space: str = "absolute",
        data_dir: str | None = None,
        city: str = "new_york",
        split: str = "train",
        routes_per_city: int = 1000,
        route_lengths: str = "train",
        route_order: str = "random",
        max_attempts: int = 2,
        resolution: int = 256,
        straight_line_length: int = 5,
        drop_rate: float = 0.5,
        relocation: bool = True,
        compat: Compat | str | None = None,
        rewards: RewardTable | None = None,
        render_mode: str | None = None,
    ):
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, not {observation!r}")
        if action_space not in ACTION_SPACES:
            raise ValueError(f"action_space must be one of {ACTION_SPACES}, not {action_space!r}")
        if route_order not in ROUTE_ORDERS:
            raise ValueError(f"route_order must be one of {ROUTE_ORDERS}, not {route_order!r}")
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be a positive int, not {max_attempts!r}")
        if not isinstance(resolution, int) or not 32 <= resolution <= 2048:
            raise ValueError(f"resolution must be an int from 32 to 2048, not {resolution!r}")
        if not 0.0 <= drop_rate <= 1.0 or straight_line_length < 0:
            raise ValueError("drop_rate must be in [0, 1] and straight_line_length non-negative")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', not {render_mode!r}")
        if rewards is not None and not isinstance(rewards, RewardTable):
            raise ValueError(f"rewards must be a RewardTable, not {rewards!r}")
        if isinstance(compat, str):
            if compat != "original":
                raise ValueError(f"compat must be a Compat, 'original' or None, not {compat!r}")
            compat = Compat.original()
        self.compat = compat or Compat()
        self.observation_kind = observation
        self.action_space_name = action_space
        self.max_attempts = max_attempts
        self.resolution = resolution
        self.route_order = route_order
        self.rewards = rewards or RewardTable()
        self.render_mode = render_mode
        self.rail_options = RailOptions(
            straight_line_length=straight_line_length,
            drop_rate=drop_rate,
            relocation=relocation,
            wrap_turns=self.compat.wrap_turns,
            include_endpoint=self.compat.include_endpoint,
            advance_on_short_legs=self.compat.advance_on_short_legs,
        )
        self.layout = "legacy" if self.compat.legacy_grid_layout else "prompt"
        if data_dir is not None:
            self.source: RouteSource = ReleasedSource(data_dir)
        else:
            cities = tuple(CITIES) if city == ALL_CITIES else (city,)
            self.source = ProceduralSource(cities, split, routes_per_city, route_lengths)

        side = 2 * resolution + GRID_GUTTER
        if observation == "image":
            self.observation_space = spaces.Box(0, 255, (side, side, 3), np.uint8)
        else:
            self.observation_space = spaces.Text(max_length=4096, charset=_CHARSET)
        self.action_space = spaces.Text(min_length=0, max_length=MAX_RESPONSE_CHARS, charset=_PRINTABLE)

        self._rail: Rail | None = None
        self._route = -1
        self._next_route = 0
        self._index = 0
        self._attempts_left = 0
        self._done = True

    # -- gymnasium API ---------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """A new episode. options: {"route_idx": i} picks the route, {"initial_heading": h} the heading."""
        super().reset(seed=seed)
        options = options or {}
        if options.get("route_idx") is not None:
            route = int(options["route_idx"])
        elif self.route_order == "sequential":
            route = self._next_route % len(self.source)
        else:
            route = int(self.np_random.integers(len(self.source)))
        if not 0 <= route < len(self.source):
            raise ValueError(f"route_idx {route} out of range: this source has {len(self.source)} routes")
        self._next_route = route + 1
        record = self.source.record(route)
        heading = options.get("initial_heading")
        if heading is None:
            heading = int(self.np_random.integers(0, 360))
        self._rail = build_rail(
            record,
            float(heading),
            self.np_random,
            self.rail_options,
            relocate=lambda point: self.source.relocate(route, point),
        )
        self._route = route
        self._index = 0
        self._attempts_left = self.max_attempts
        self._done = False
        return self._observation(), self._info()

    def step(self, action: Any):
        if self._done or self._rail is None:
            raise ResetNeeded("the episode is over (arrived or out of attempts); call reset() first")
        point = self._rail.points[self._index]
        if self.compat.unscored_extra_call and self._attempts_left == 0:
            self._done = True
            info = self._info()
            info.update(feedback="You ran out of attempts at this point.", outcome="out_of_attempts", success=False)
            return self._observation(), self.rewards.wrong_action, False, True, info

        verdict = verify(
            action,
            point,
            self.action_space_name,
            rewards=self.rewards,
            strict_parsing=self.compat.strict_parsing,
            intersection_from_landmark_only=self.compat.intersection_from_landmark_only,
            literal_double_braces=self.compat.literal_double_braces,
        )
        terminated = truncated = False
        if verdict.correct:
            if point.absolute_action == STOP:
                terminated = True
            else:
                self._index += 1
                self._attempts_left = self.max_attempts
        else:
            self._attempts_left -= 1
            truncated = self._attempts_left == 0 and not self.compat.unscored_extra_call
        self._done = terminated or truncated
        info = self._info()
        info.update(feedback=verdict.feedback, outcome=verdict.outcome.value)
        if self._done:
            info["success"] = terminated
        return self._observation(), verdict.reward, terminated, truncated, info

    def render(self):
        if self.render_mode == "rgb_array" and self._rail is not None:
            return self._grid()
        return None

    # -- helpers ---------------------------------------------------------------------------------

    def _grid(self) -> np.ndarray:
        point = self._rail.points[self._index]
        return self.source.grid(self._route, point.geocode, point.heading, self.resolution, self.layout)

    def _observation(self):
        if self.observation_kind == "image":
            return self._grid()
        return self._rail.points[self._index].oracle_text

    def _current_line(self) -> str:
        point = self._rail.points[self._index]
        if self.observation_kind == "text":
            return point.oracle_text
        return f"{VL_OBSERVATION}; {'You observe an intersection' if 'intersection' in point.oracle_text else ''}"

    def _info(self) -> dict[str, Any]:
        rail, point = self._rail, self._rail.points[self._index]
        return {
            "instruction": rail.instruction,
            "current_instruction": rail.sentences[point.sentence],
            "expert_action": point.action(self.action_space_name),
            "oracle_observation": point.oracle_text,
            "observation_history": history_lines(rail.points, self._index, self.action_space_name,
                                                 self._current_line()),
            "action_space": list(action_set(self.action_space_name)),
            "step_index": self._index,
            "num_points": len(rail.points),
            "attempts_left": self._attempts_left,
            "route_index": self._route,
            "city": self.source.city(self._route),
        }

    def options_for_episode(self, index: int) -> dict | None:
        """Reset options that make episode `index` of an evaluation the same route every time: with a
        fixed route order, episode i walks route i (wrapping around)."""
        return {"route_idx": index % len(self.source)} if self.route_order == "sequential" else None

    @property
    def rail(self) -> Rail | None:
        return self._rail


_PRINTABLE = "".join(chr(c) for c in range(32, 127)) + "\n\t"
_CHARSET = _PRINTABLE + "".join(chr(c) for c in range(160, 256))  # place names may carry Latin-1 accents

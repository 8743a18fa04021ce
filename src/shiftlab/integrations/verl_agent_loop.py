"""Multi-turn shiftlab episodes (revisions, V-IRL's decision points with a new street view each step) as a
verl 0.9.1 agent loop. It runs only inside verl, so it imports verl at its top.

    actor_rollout_ref.rollout.agent.agent_loop_config_path=DIR/agent_loop.yaml   (written by the export)
    actor_rollout_ref.rollout.agent.default_agent_loop=shiftlab_env              (or an agent_name column)

Written against verl 0.9.1's `experimental/agent_loop/agent_loop.py` (`AgentLoopBase`, `AgentLoopOutput`,
`register`) and its two loops there. verl instantiates the loop per episode with the trainer config, the
server manager, tokenizer and processor, and awaits `run(sampling_params, **row)`; `row` holds the
dataset fields (`raw_prompt`, the prompt with images resolved; `reward_model`; `extra_info`). Continuous
Token is its only tokenization path: the first prompt is `ct_build_initial_tokens`, every model answer is
merged with `ct_merge_assistant_token` (mask 1), every message the environment adds with
`ct_merge_context_msg` (mask 0), and each turn is `server_manager.generate(request_id=, prompt_ids=,
sampling_params=, image_data=)` returning a `TokenOutput`. New images are appended to the image list the
server and the training pass receive, as `ToolAgentLoop` does with a tool's images.

The loop sets `reward_score` (the sum of the environment's rewards), so verl skips the reward function
for these episodes, and `extra_fields["reward_extra_info"]` with the same keys `compute_score` returns, so
validation reports "acc" by data_source and a batch may mix both paths. The episode logic itself is
`shiftlab.integrations.verl.play_episode`, tested on the real environments without verl.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register
from verl.utils.profiler import simple_timer

from shiftlab.integrations.verl import AGENT_LOOP, EnvSession, EpisodeSpec, chat_messages, play_episode
from shiftlab.messages import Message


@register(AGENT_LOOP)
class EnvAgentLoop(AgentLoopBase):
    """Plays one episode per `run`: answer, environment step, the prompt style's next messages appended,
    until the environment ends it, the response budget (`rollout.response_length`) is spent, or
    `max_turns` answers (default: `rollout.multi_turn.max_assistant_turns`; None: no cap) were given."""

    def __init__(self, *args: Any, max_turns: int | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)  # it takes (and ignores) the tool list and the yaml entry's name
        self.response_length = self.rollout_config.response_length
        self.max_turns = max_turns or self.rollout_config.multi_turn.max_assistant_turns

    async def run(self, sampling_params: dict[str, Any], priority: int = 0, **kwargs: Any) -> AgentLoopOutput:
        priority = int(priority)
        spec = EpisodeSpec.from_json(kwargs["reward_model"]["ground_truth"])
        messages: list[dict[str, Any]] = list(kwargs["raw_prompt"])
        multi_modal = await self.process_multi_modal_info(messages)
        images = list(multi_modal.get("images") or [])
        self._assert_mm_supported(bool(images))
        request_id = f"det-{priority}" if getattr(self.rollout_config, "full_determinism", False) else uuid4().hex
        state: dict[str, Any] = {"ids": None, "mask": [], "logprobs": [], "spent": False}
        metrics: dict[str, Any] = {}

        async def generate(new: list[Message]) -> str | None:
            if state["spent"]:
                return None
            if state["ids"] is None:  # the first conversation is the dataset's prompt, its images resolved
                state["ids"] = await self.ct_build_initial_tokens(messages, images=images or None)
            else:
                chat, new_images = chat_messages(new)
                self._assert_mm_supported(bool(new_images))
                previous = list(messages)
                messages.extend(chat)
                images.extend(new_images)
                merged, mask, logprobs = await self.ct_merge_context_msg(
                    previous, messages, state["ids"], state["mask"], state["logprobs"] or None)
                if len(mask) >= self.response_length:
                    return None
                state.update(ids=merged.token_ids, mask=mask, logprobs=logprobs or [])
            with simple_timer("generate_sequences", metrics):
                output = await self.server_manager.generate(
                    request_id=request_id, prompt_ids=state["ids"], sampling_params=sampling_params,
                    image_data=images or None, priority=priority)
            if output.num_preempted is not None:
                metrics["num_preempted"] = metrics.get("num_preempted", 0) + output.num_preempted
            merged, mask, logprobs = await self.ct_merge_assistant_token(
                state["ids"], output.token_ids, state["mask"],
                state["logprobs"] if (state["logprobs"] or output.log_probs) else None,
                assistant_logprobs=output.log_probs or None)
            state.update(ids=merged.token_ids, mask=mask, logprobs=logprobs or [],
                         spent=len(mask) >= self.response_length)
            text = await self.loop.run_in_executor(
                None, lambda: self.tokenizer.decode(output.token_ids, skip_special_tokens=True))
            messages.append({"role": "assistant", "content": text})
            return text

        session = EnvSession(spec)
        try:
            result = await play_episode(session, generate, self.max_turns)
        finally:
            session.close()
        ids, mask, logprobs = state["ids"] or [], state["mask"], state["logprobs"]
        cut = len(ids) - len(mask)
        limit = self.response_length
        metrics.setdefault("num_preempted", -1)
        return AgentLoopOutput(
            prompt_ids=ids[:cut],
            response_ids=ids[cut:][:limit],
            response_mask=mask[:limit],
            response_logprobs=logprobs[:limit] if logprobs else None,
            multi_modal_data={"images": images} if images else {},
            mm_processor_kwargs=self._get_mm_processor_kwargs(),
            reward_score=result.score,
            num_turns=sum(1 for m in messages if m.get("role") in ("user", "assistant")),
            metrics=metrics,
            extra_fields={"turn_scores": list(result.rewards), "tool_rewards": [],
                          "reward_extra_info": result.fields},
        )

#!/usr/bin/env bash
# GRPO on GP-L with verl 0.9.1, validated on GP-L and its rule shift side by side
# (val-core/shiftlab/gp-l/acc/... and val-core/shiftlab/gp-l/rule-ood/acc/...).
#
# The values below are a starting point set by hand; none was tuned on any result.
# NOT RUN HERE: it needs GPUs, verl 0.9.1 with its dependencies (ray, vllm or sglang, ...) and a model.
# The override keys were checked against verl 0.9.1's verl/trainer/config/_generated_ppo_trainer.yaml;
# the agent loop against verl/experimental/agent_loop/agent_loop.py. shiftlab must be installed in the
# environment verl's workers run in (pip install -e . next to verl).
#
#   MODE=single  one answer per episode, scored by shiftlab.integrations.verl:compute_score (verl's default
#                single_turn_agent; the default)
#   MODE=multi   revisions: the shiftlab_env agent loop plays each episode to its end (wrong answer ->
#                verifier feedback -> new answer ...) and hands verl the episode's reward itself
#
# verl <= 0.7 only (0.8 removed interactions), the interaction path instead of MODE=multi:
#   actor_rollout_ref.rollout.multi_turn.enable=True
#   actor_rollout_ref.rollout.multi_turn.interaction_config_path=examples/verl/interaction.yaml
#   actor_rollout_ref.rollout.agent.default_agent_loop=tool_agent
set -euo pipefail
cd "$(dirname "$0")/../.."

MODEL=${MODEL:-Qwen/Qwen2.5-1.5B-Instruct}
DATA=${DATA:-data/verl/gp-l}
MODE=${MODE:-single}
GPUS=${GPUS:-8}

# Training episodes from seed 1000000 (where shiftlab's RL draws them), test episodes from seed 0 (the ones
# `shiftlab eval` plays): the defaults; the export refuses overlapping seeds.
[ -f "$DATA/train.parquet" ] || shiftlab export verl --tasks gp-l --episodes 20000 --split train --out "$DATA"
[ -f "$DATA/test.parquet" ] || shiftlab export verl --tasks gp-l,gp-l/rule-ood --episodes 200 --split test \
    --out "$DATA"

MULTI_TURN=()
if [ "$MODE" = multi ]; then
    MULTI_TURN=(
        actor_rollout_ref.rollout.multi_turn.enable=True
        actor_rollout_ref.rollout.multi_turn.max_assistant_turns=5
        actor_rollout_ref.rollout.agent.agent_loop_config_path=examples/verl/agent_loop.yaml
        actor_rollout_ref.rollout.agent.default_agent_loop=shiftlab_env
    )
fi

python -m verl.trainer.main_ppo \
    algorithm.adv_estimator=grpo \
    data.train_files="$DATA/train.parquet" \
    data.val_files="$DATA/test.parquet" \
    data.train_batch_size=256 \
    data.max_prompt_length=1024 \
    data.max_response_length=2048 \
    data.filter_overlong_prompts=True \
    data.truncation=error \
    actor_rollout_ref.model.path="$MODEL" \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=64 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8 \
    actor_rollout_ref.actor.use_kl_loss=True \
    actor_rollout_ref.actor.kl_loss_coef=0.001 \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n=8 \
    actor_rollout_ref.rollout.tensor_model_parallel_size=1 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=16 \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=16 \
    ${MULTI_TURN[@]+"${MULTI_TURN[@]}"} \
    reward.custom_reward_function.path=pkg://shiftlab.integrations.verl \
    reward.custom_reward_function.name=compute_score \
    trainer.n_gpus_per_node="$GPUS" \
    trainer.nnodes=1 \
    trainer.logger='["console"]' \
    trainer.project_name=shiftlab \
    trainer.experiment_name="gp-l-grpo-$MODE" \
    trainer.test_freq=10 \
    trainer.save_freq=50 \
    trainer.total_epochs=1 \
    "$@"

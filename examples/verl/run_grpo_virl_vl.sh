#!/usr/bin/env bash
# GRPO on V-IRL-VL (street views) with verl 0.9.1 through the shiftlab_env agent loop: each decision
# point's answer steps the environment, and the next observation (a new street-view image) is appended
# to the conversation, so one sequence holds the whole route. Validated on the ID preset and its shifts.
#
# The values below are a starting point set by hand; none was tuned on any result.
# NOT RUN HERE: it needs GPUs, verl 0.9.1 with its dependencies (ray, vllm or sglang, qwen_vl_utils, ...)
# and a vision-language model. Keys checked against verl 0.9.1's _generated_ppo_trainer.yaml. A route of
# several steps carries several images: raise data.max_response_length (the appended observations count
# against it) or lower the image size with data.mm_processor_kwargs if episodes are cut.
set -euo pipefail
cd "$(dirname "$0")/../.."

MODEL=${MODEL:-Qwen/Qwen2.5-VL-3B-Instruct}
DATA=${DATA:-data/verl/virl-vl}
GPUS=${GPUS:-8}

[ -f "$DATA/train.parquet" ] || shiftlab export verl --tasks virl-vl --episodes 5000 --split train --out "$DATA"
# 18 test episodes each: visual-ood is the mini benchmark's fixed list of 9 cities x 2 routes (episode i
# takes route i, wrapping round after 18).
[ -f "$DATA/test.parquet" ] || shiftlab export verl --tasks virl-vl,virl-vl/rule-ood,virl-vl/visual-ood \
    --episodes 18 --split test --out "$DATA"

python -m verl.trainer.main_ppo \
    algorithm.adv_estimator=grpo \
    data.train_files="$DATA/train.parquet" \
    data.val_files="$DATA/test.parquet" \
    data.image_key=images \
    data.train_batch_size=64 \
    data.max_prompt_length=4096 \
    data.max_response_length=8192 \
    actor_rollout_ref.model.path="$MODEL" \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=16 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2 \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n=8 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4 \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4 \
    actor_rollout_ref.rollout.multi_turn.enable=True \
    actor_rollout_ref.rollout.agent.agent_loop_config_path=examples/verl/agent_loop.yaml \
    actor_rollout_ref.rollout.agent.default_agent_loop=shiftlab_env \
    reward.custom_reward_function.path=pkg://shiftlab.integrations.verl \
    reward.custom_reward_function.name=compute_score \
    trainer.n_gpus_per_node="$GPUS" \
    trainer.nnodes=1 \
    trainer.logger='["console"]' \
    trainer.project_name=shiftlab \
    trainer.experiment_name=virl-vl-grpo \
    trainer.test_freq=10 \
    trainer.total_epochs=1 \
    "$@"

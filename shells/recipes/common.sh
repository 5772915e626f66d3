# shellcheck shell=bash disable=SC2034
# Settings shared by EVERY method (sourced by shells/train.sh). One place, so the comparison is fair.
#
# The paper (Sec. 4.1) states the data mix, the rationale models, the judge (Qwen3-235B-A22B), the
# backbones and the frameworks (ms-swift, verl). It states no optimiser, batch, rollout or length
# setting. Each value below is chosen once, with its reason, and used unchanged by all RL methods
# (AWPO, its ablations, GRPO/ToolRL, Dr.GRPO, DAPO, Mixed-reward GRPO, the GRPO stage of SFT+GRPO).
# A method file (shells/recipes/METHOD.sh) adds only the switches that define that method (below).

# ---------------------------------------------------------------- the method switches (shells/recipes/METHOD.sh)
# load_recipe METHOD sets these defaults, then sources METHOD.sh, which sets only the switches that define
# the method. A recipe that is another one plus a change starts with `recipe_parent NAME` (sft_grpo.sh is
# grpo.sh from the SFT model; each ablation is awpo.sh with its own config file).
#   METHOD_KIND         rl | sft
#   METHOD_PLUGIN       the --external_plugins file: plugin/awpo.py (the AWPO trainer) or plugin/baselines.py
#                       (AWPO's rewards under the stock ms-swift trainer)
#   METHOD_REWARDS      the --reward_funcs
#   METHOD_ARGS         extra ms-swift switches
#   METHOD_AWPO_CONFIG  the AWPO_CONFIG file (AWPO settings + judge), '' for none
#   METHOD_NEEDS_JUDGE  1 if a reward calls the LLM judge
#   METHOD_PAPER_ROW    the paper's row name (Tables 2-5), '' if none
#   METHOD_INIT         base | sft (policy start point: the backbone, or the SFT run of the same backbone)
RECIPES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
load_recipe() {
  METHOD_KIND=rl; METHOD_PLUGIN=''; METHOD_REWARDS=(); METHOD_ARGS=(); METHOD_AWPO_CONFIG=''
  METHOD_NEEDS_JUDGE=0; METHOD_PAPER_ROW=''; METHOD_INIT=base
  recipe_parent "$1"
}
# recipe_parent NAME: source shells/recipes/NAME.sh (found from any working directory); 1 if there is none.
recipe_parent() {
  if [ "$1" = common ] || [ ! -f "$RECIPES_DIR/$1.sh" ]; then
    echo "error: unknown method '$1' (no recipe $RECIPES_DIR/$1.sh)" >&2
    return 1
  fi
  # shellcheck source=shells/recipes/awpo.sh
  source "$RECIPES_DIR/$1.sh"
}

# ---------------------------------------------------------------- data (paper Sec. 4.1)
# ToolACE 2k, Hammer (masked) 1k, xLAM multi-turn 11k, xLAM single-turn 30k, decomposed SWiRL-style into
# one instance per assistant step by data_prep.
TRAIN_SOURCES="toolace:2000,hammer:1000,xlam_mt:11000,xlam:30000"
# DATA_DIR (default data/): on several nodes it must be a filesystem every node sees (shells/reproduce.sh).
DATA_DIR=${DATA_DIR:-data}
TRAIN_DATA=$DATA_DIR/awpo_train.jsonl            # messages, tools, ground_truth, reference_rationale
RATIONALE_DATA=$DATA_DIR/awpo_train_rationales.jsonl
# The same instances as SFT rows (target = the reference rationale + the gold action), one file per thinking
# mode (model_settings picks the backbone's): <think>rationale</think> + action for the thinking backbones,
# the rationale as plain text before the calls for Qwen3-4B-Instruct-2507 (no <think>: served without a
# reasoning parser, and the reward reads a non-thinking model's reasoning as the text before its calls).
SFT_DATA_THINK=$DATA_DIR/awpo_sft.jsonl
SFT_DATA_NOTHINK=$DATA_DIR/awpo_sft_nothink.jsonl
SFT_DATA=$SFT_DATA_THINK
# The paper uses GLM-4.6 and GPT-4o for reference rationales; one model keeps the rationale style uniform.
RATIONALE_MODEL=gpt-4o

# ---------------------------------------------------------------- RL: batch and rollouts
# G = 8 completions per prompt: the usual GRPO group size (DeepSeekMath, DAPO use 8-16); with outcome
#   rewards on [0, 2] a group of 8 leaves enough room for dispersion that AWPO's gate (Eq. 24) is informative.
NUM_GENERATIONS=8
# 32 prompts x 8 = 256 completions per optimiser step, split over the GPUs by gradient accumulation
#   (train.sh computes it), so the step is the same on 8 or 16 GPUs.
PROMPTS_PER_STEP=32
COMPLETIONS_PER_STEP=$((PROMPTS_PER_STEP * NUM_GENERATIONS))
PER_DEVICE_BATCH=4             # completions per GPU per micro-step (80 GB cards; see MEM_PROFILE)
# 500 steps x 32 prompts = 16k prompts, ~1/3 of an epoch of the 44k-instance mix: the paper's curves
#   (Figure 1) flatten well before that, and every method gets exactly the same number of updates.
MAX_STEPS=500
SAVE_STEPS=100
SEED=42

# ---------------------------------------------------------------- RL: optimiser and objective
# Full-parameter training: the baselines of the paper (ToolRL, Dr.GRPO, DAPO) are full-parameter methods.
TUNER_TYPE=full
# 1e-6 constant after a 2 % warm-up: the value ToolRL and DAPO use for Qwen models of this size.
LEARNING_RATE=1e-6
WARMUP_RATIO=0.02
LR_SCHEDULER=constant_with_warmup
# No KL term (beta 0): DAPO and Dr.GRPO drop it by definition; using 0 for all keeps the objectives
#   comparable and saves a reference copy of the model on every GPU.
BETA=0.0
# PPO/GRPO clip radius 0.2: the usual value; AWPO's eps_max (shells/configs/awpo.yaml) is the same 0.2,
#   so AWPO only ever tightens it (Eq. 29). DAPO raises the upper side only (its recipe).
EPSILON=0.2

# ---------------------------------------------------------------- RL: lengths and sampling
# Prompt budget 4096 tokens: a multi-turn instance carries the tool schemas and earlier turns (xLAM-MT
#   dialogues reach ~3k tokens). A longer prompt is dropped, not cut: ms-swift's GRPO default (left
#   truncation) would cut the system prompt and the tool schemas, so the rollout would see a prompt without
#   its tools. With `delete` ms-swift re-draws another prompt in its place (rollout_mixin
#   resample_encode_failed_inputs). The same budget and rule go to `swift rollout` (server mode).
MAX_LENGTH=4096
TRUNCATION=delete
# 1024 new tokens: room for a Qwen3 <think> block plus several tool calls; the value ToolRL uses.
MAX_COMPLETION_LENGTH=1024
# Sampling at temperature 1.0, top_p 1.0: unbiased samples of the policy (what the PPO ratio assumes).
TEMPERATURE=1.0
TOP_P=1.0

# ---------------------------------------------------------------- judge (AWPO, its ablations, Mixed-reward GRPO)
# Judge model of the paper; served by shells/serve_judge.sh on its own node. Greedy (temperature 0),
# at most 32 new tokens, guided JSON {"score": x}, thinking off: see shells/configs/awpo.yaml.
JUDGE_MODEL=Qwen/Qwen3-235B-A22B
JUDGE_PORT=8000

# ---------------------------------------------------------------- SFT (the SFT and SFT+GRPO rows)
# One epoch over the same instances, lr 1e-5 (ms-swift's full-parameter default), 128 rows per step.
SFT_LEARNING_RATE=1e-5
SFT_EPOCHS=1
SFT_ROWS_PER_STEP=128
SFT_PER_DEVICE_BATCH=4

# ---------------------------------------------------------------- backbones and their hardware
# model_settings MODEL sets MODEL_ID, the paper's group name for it (PAPER_GROUP, eval.tables) and how
# the run is laid out on GPUs (ms-swift switches).
#   ROLLOUT=colocate (default, every backbone): vLLM inside the training processes, ZeRO-3; vLLM sleeps
#                     (--sleep_level) while the model trains, so every GPU trains and generates, none idles.
#   ROLLOUT=server (ROLLOUT_MODE=server): vLLM in its own process group started by shells/serve_rollout.sh
#                     (`swift rollout`) on its own node, weights synced from the trainer. In ms-swift 4.6 the
#                     trainer waits for the rollout and the server waits for the update (synchronous), so half
#                     the GPUs idle at any time; --async_generate would overlap them but samples from the
#                     previous weights and, per ms-swift, ignores the clip, which would blur the clip
#                     ablation (Eq. 29). Hence colocate for the 8B too: on 8 x 80 GB, ZeRO-3 holds 16 bytes x
#                     8B / 8 = 16 GB of weights + grads + Adam per GPU, vLLM gets 45 % (16 GB bf16 weights,
#                     ~20 GB KV cache), and optimiser + model are offloaded while vLLM generates.
# THINKING: Qwen3's thinking mode, passed explicitly as --enable_thinking to `swift rlhf`, `swift sft`,
#   `swift rollout` and to the evaluation server (shells/eval.sh), so rollouts, SFT and evaluation render the
#   same prompt. ms-swift 4.6 turns thinking OFF by default for hybrid templates (template/base.py: the
#   default is `is_thinking and not non_thinking_prefix`, so the prompt ends with an empty
#   <think></think>), while `vllm serve` uses the HF chat template with thinking ON. The paper trains
#   reasoning (the judge scores it), so the hybrid models run with thinking on everywhere. Qwen3-4B-2507
#   Instruct is a non-thinking model (template qwen3_nothinking): false, its template has no thinking switch.
model_settings() {
  OFFLOAD_80G=0
  case "$1" in
    qwen3-1.7b) MODEL_ID=Qwen/Qwen3-1.7B;             PAPER_GROUP=Qwen3-1.7B;    VLLM_GPU_MEM=0.4;  THINKING=true ;;
    qwen3-4b)   MODEL_ID=Qwen/Qwen3-4B-Instruct-2507; PAPER_GROUP=Qwen3-4B-2507; VLLM_GPU_MEM=0.5;  THINKING=false ;;
    qwen3-8b)   MODEL_ID=Qwen/Qwen3-8B;               PAPER_GROUP=Qwen3-8B;      VLLM_GPU_MEM=0.45; THINKING=true
                OFFLOAD_80G=1 ;;
    *) return 1 ;;
  esac
  BACKBONE=$1
  if [ "$THINKING" = true ]; then SFT_DATA=$SFT_DATA_THINK; else SFT_DATA=$SFT_DATA_NOTHINK; fi
  ROLLOUT=${ROLLOUT_MODE:-colocate}
  [ "$ROLLOUT" = colocate ] || [ "$ROLLOUT" = server ] || return 1
  GPUS_PER_NODE=${NPROC_PER_NODE:-8}
  DEEPSPEED=zero3
}
MODELS="qwen3-1.7b qwen3-4b qwen3-8b"

# ---------------------------------------------------------------- memory profiles for smaller cards
# MEM_PROFILE=80g (default) | 40g | 24g. Each step down halves the micro-batch (gradient accumulation
# doubles, so the optimiser step is unchanged), offloads more, and sizes vLLM's share of the card so that
# its bf16 weights AND a KV cache for the engine's sequences fit (python -m shells.memory_plan, the table in
# docs/training.md; train.sh refuses a launch whose plan does not fit). SFT shrinks too: one SFT sample is
# up to 5120 tokens, and its fp32 logits alone are 5120 x 152k x 4 B = 3.1 GB (Qwen3 vocabulary), so 40/24 GB
# cards take one sample per micro-step (accumulation x4, same 128 rows per step).
#   40g: weights and optimiser go to the CPU while vLLM generates, so vLLM may take most of the card:
#        1.7B 0.6 (KV for all 32 sequences of an engine at full length), 4B / 8B 0.75 (8B: 15.3 GiB of weights
#        + 12.7 GiB KV cache, 18 of 32 full-length sequences at once; the old 0.3 = 11.8 GiB held not even
#        the 8B's weights).
#   24g: zero3_offload (weights and optimiser live on the CPU), vLLM 0.7; the 8B's 15.3 GiB of weights do not
#        leave a KV cache on one 23.6 GiB card, so its vLLM runs tensor parallel over 2 GPUs (7.6 GiB each).
mem_profile_args() {
  case "${MEM_PROFILE:-80g}" in
    80g) MEM_ARGS=(--sleep_level 1)
         if [ "$OFFLOAD_80G" = 1 ]; then MEM_ARGS+=(--offload_model true --offload_optimizer true); fi ;;
    40g) PER_DEVICE_BATCH=2; SFT_PER_DEVICE_BATCH=1
         VLLM_GPU_MEM=0.75; [ "${BACKBONE:-}" = qwen3-1.7b ] && VLLM_GPU_MEM=0.6
         MEM_ARGS=(--sleep_level 2 --offload_model true --offload_optimizer true) ;;
    24g) PER_DEVICE_BATCH=1; VLLM_GPU_MEM=0.7; DEEPSPEED=zero3_offload; SFT_PER_DEVICE_BATCH=1
         MEM_ARGS=(--sleep_level 2 --offload_model true --offload_optimizer true --vllm_enforce_eager true)
         if [ "${BACKBONE:-}" = qwen3-8b ]; then MEM_ARGS+=(--vllm_tensor_parallel_size 2); fi ;;
    *) return 1 ;;
  esac
  # ZeRO-3 keeps weights, gradients and Adam on the GPUs (16 B per parameter / GPUs): with fewer GPUs than the
  # card needs for the backbone (the memory plan's numbers), weights and optimiser live on the CPU instead.
  local need
  case "${BACKBONE:-}-${MEM_PROFILE:-80g}" in
    qwen3-4b-80g) need=2 ;; qwen3-8b-80g) need=4 ;; qwen3-4b-40g) need=4 ;; qwen3-8b-40g) need=8 ;; *) need=1 ;;
  esac
  if [ $(("${GPUS_PER_NODE:-8}" * "${NNODES:-1}")) -lt "$need" ]; then DEEPSPEED=zero3_offload; fi
}

# ---------------------------------------------------------------- one model hub for training and evaluation
# MODEL_HUB=hf (default) | modelscope: where every process downloads the base weights from. ms-swift uses
# ModelScope unless USE_HF=1 (swift/utils/env.py use_hf_hub), vLLM the HF hub unless VLLM_USE_MODELSCOPE=True;
# hub_env sets both the same way for train.sh, serve_rollout.sh and eval.sh (and data_prep build --hub), so a
# model is downloaded once, from one hub.
MODEL_HUB=${MODEL_HUB:-hf}
hub_env() {
  case "$MODEL_HUB" in
    hf) HUB_ENV=(USE_HF=1 VLLM_USE_MODELSCOPE=False) ;;
    modelscope) HUB_ENV=(USE_HF=0 VLLM_USE_MODELSCOPE=True) ;;
    *) echo "error: unknown MODEL_HUB '$MODEL_HUB' (hf or modelscope)" >&2; return 1 ;;
  esac
}

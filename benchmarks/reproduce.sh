#!/usr/bin/env bash
# Regenerates every table and figure that README.md and docs/ publish, with today's code and zoo configs: runs the
# benchmarks into bench_runs/ (resumable: run it again after an interruption and finished runs are kept), copies
# their reports into docs/results/, and rewrites the generated tables (python -m benchmarks.docs_tables).
#
#     bash benchmarks/reproduce.sh            # everything (days on 2 cores: the MuJoCo grid is 105 runs of 1e6 steps)
#     bash benchmarks/reproduce.sh classic    # one part: defaults classic cartpole100 mujoco natural masking ablation
#                                             # variance throughput
#
# Each part names the page that shows it. Runs use one torch thread each and two at a time (--jobs 2); set JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
JOBS=${JOBS:-2}
OUT=${OUT:-bench_runs}
RESULTS=docs/results/benchmark
B() { "$PY" -m sb3_reinforce benchmark --jobs "$JOBS" "$@"; }

# Copy a benchmark's report (not its runs) to docs/results/benchmark/NAME
publish() {
    mkdir -p "$RESULTS/$1"
    cp "$OUT/$1"/*.md "$OUT/$1"/*.csv "$OUT/$1"/*.png "$OUT/$1"/random_policy.json "$RESULTS/$1/" 2>/dev/null || true
}

# The shared MuJoCo block (zoo_configs/reinforce.yml, &mujoco-defaults) spelled out, so that the rows below mean the
# same on every env whatever its own entry is
SHARED="n_envs=8,n_steps=256,learning_rate=0.0003,n_value_epochs=10,natural_step_size=None,target_kl=0.01,\
policy_kwargs='dict(log_std_init=-1, ortho_init=False, activation_fn=nn.ReLU, net_arch=dict(pi=[256, 256], vf=[256, 256]))'"
MUJOCO_ROWS=(
    "reinforce:$SHARED,policy_step='gradient'"    # REINFORCE, plain step
    "reinforce:$SHARED,policy_step='natural'"     # REINFORCE, natural step (the HalfCheetah-v5 entry)
    "reinforce:policy_step='natural',natural_step_size=0.1,target_kl=0.05,n_envs=16,n_steps=64,n_value_epochs=20,learning_rate='lin_0.001',policy_kwargs='dict(net_arch=dict(pi=[64, 64], vf=[64, 64]))'"  # bounded natural step (Hopper-v5, Walker2d-v5 entry)
    "reinforce:$SHARED,return_estimator='reward_to_go',batch_mode='episodes',n_episodes=8,policy_step='gradient'"  # Monte Carlo
    a2c ppo trpo
)

part_defaults() {  # README (make benchmark) and docs/reinforce.md: the defaults on CartPole-v1
    "$PY" benchmarks/cartpole.py --seeds 0 1 2 3 4 --timesteps 100000 --out docs/results/cartpole_defaults.csv
}

part_classic() {  # docs/benchmark.md, classic control
    B --envs CartPole-v1 --algos reinforce a2c ppo --first-seed 20 --seeds 20 --n-timesteps 100000 --eval-freq 5000 \
        --out "$OUT/cartpole_fresh20_39"
    publish cartpole_fresh20_39
    B --envs Acrobot-v1 LunarLander-v3 Pendulum-v1 --algos reinforce a2c ppo --seeds 5 --out "$OUT/classic4"
    publish classic4
    B --envs MountainCar-v0 --algos reinforce --seeds 5 --out "$OUT/mountaincar"
    publish mountaincar
}

part_cartpole100() {  # docs/benchmark.md and docs/tuning.md: the CartPole-v1 entry over 100 seeds, by blocks of 10
    local files=()
    for first in 0 100 200 300; do
        local n=20
        [ "$first" = 0 ] && n=40
        B --envs CartPole-v1 --algos reinforce --first-seed "$first" --seeds "$n" --n-timesteps 100000 --eval-freq 5000 \
            --out "$OUT/cartpole_entry_$first"
        files+=("$OUT/cartpole_entry_$first/per_seed.csv")
    done
    mkdir -p "$RESULTS/cartpole_entry_blocks"
    "$PY" -m benchmarks.fallbacks "${files[@]}" --threshold 475 --algo reinforce --blocks 10 \
        > "$RESULTS/cartpole_entry_blocks/blocks.md"
}

part_mujoco() {  # README and docs/benchmark.md, MuJoCo
    B --envs HalfCheetah-v5 Hopper-v5 Walker2d-v5 --thresholds Walker2d-v5=3500 --algos "${MUJOCO_ROWS[@]}" --seeds 5 \
        --out "$OUT/mujoco_grid5"
    publish mujoco_grid5
}

part_natural() {  # docs/benchmark.md, the natural step
    B --envs Acrobot-v1 --algos reinforce "reinforce:policy_step='natural'" trpo --seeds 3 --out "$OUT/natural_acrobot"
    publish natural_acrobot
}

part_masking() {  # docs/benchmark.md and docs/reinforce_mask.md
    B --envs InvalidActionDiscrete-v0 InvalidActionMultiDiscrete-v0 --algos reinforce_mask \
        "reinforce:n_envs=4,batch_mode='episodes',n_episodes=8,learning_rate=0.003,return_estimator='reward_to_go',baseline='value'" \
        --seeds 5 --n-timesteps 50000 --out "$OUT/masking"
    publish masking
}

part_ablation() {  # docs/benchmark.md, estimators and baselines on Acrobot-v1
    B --envs Acrobot-v1 --algos reinforce "reinforce:return_estimator='reward_to_go'" \
        "reinforce:return_estimator='reward_to_go',baseline=None" "reinforce:return_estimator='reward_to_go',baseline='linear'" \
        "reinforce:return_estimator='total',baseline=None" \
        "reinforce:return_estimator='reward_to_go',baseline=None,batch_mode='episodes',n_episodes=8" \
        "reinforce:return_estimator='reward_to_go',baseline='linear',batch_mode='episodes',n_episodes=8" \
        "reinforce:return_estimator='total',baseline=None,batch_mode='episodes',n_episodes=8" \
        --seeds 3 --out "$OUT/ablation_acrobot"
    publish ablation_acrobot
    local common="batch_mode='episodes',n_episodes=8,return_estimator='reward_to_go',normalize_advantage=False,learning_rate=0.001"
    B --envs Acrobot-v1 --algos "reinforce:baseline='value',$common" "reinforce:baseline=None,$common" \
        "reinforce:baseline='mean',$common" "reinforce:baseline='loo',$common" "reinforce:baseline='optimal',$common" \
        "reinforce:baseline='optimal_scalar',$common" --seeds 5 --n-timesteps 200000 --out "$OUT/ablation_baselines_acrobot"
    publish ablation_baselines_acrobot
}

part_variance() {  # docs/variance.md
    "$PY" benchmarks/variance_study.py --out docs/results/variance
}

part_throughput() {  # docs/performance.md
    "$PY" -m benchmarks.throughput --envs CartPole-v1 --modes training --train-steps 100000 --repeats 3 \
        --out docs/results/throughput_cartpole.csv
}

PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(defaults classic cartpole100 mujoco natural masking ablation variance throughput)
for part in "${PARTS[@]}"; do
    echo "== $part"
    "part_$part"
done
"$PY" -m benchmarks.docs_tables

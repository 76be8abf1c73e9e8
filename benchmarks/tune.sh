#!/usr/bin/env bash
# Tune REINFORCE's zoo entry for one env with the zoo's Optuna set-up: two worker processes share one SQLite study.
#   benchmarks/tune.sh ENV N_TIMESTEPS N_TRIALS_PER_WORKER STUDY_NAME [more zoo flags]
#   benchmarks/tune.sh CartPole-v1 50000 40 cartpole
# Then confirm a trial over 5 seeds with the zoo's protocol:
#   python benchmarks/zoo_confirm.py --env CartPole-v1 --threshold 475 -- --storage sqlite:///logs/tuning/studies.db \
#       --study-name cartpole --trial-id N
set -euo pipefail
env_id=$1; n_timesteps=$2; n_trials=$3; study=$4; shift 4
folder=${TUNE_FOLDER:-logs/tuning}
mkdir -p "$folder"
for worker in 1 2; do
  python -m sb3_reinforce train --algo reinforce --env "$env_id" -n "$n_timesteps" -optimize --n-trials "$n_trials" \
    --n-jobs 1 --sampler tpe --pruner median --n-startup-trials 8 --n-evaluations 4 --eval-episodes 10 --num-threads 1 \
    --storage "sqlite:///$folder/studies.db" --study-name "$study" -f "$folder" --no-optim-plots --seed "$worker" "$@" \
    > "$folder/$study.worker$worker.log" 2>&1 &
done
wait

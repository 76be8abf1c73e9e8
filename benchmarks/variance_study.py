"""
The variance study of docs/variance.md: CartPole-v1 and InvertedPendulum-v5, at a random and at a partly trained
policy (REINFORCE with its defaults, trained for a few thousand steps and saved).

    python benchmarks/variance_study.py --out docs/results/variance
"""

import argparse
import os
import subprocess
import sys

from stable_baselines3.common.env_util import make_vec_env

from sb3_reinforce import REINFORCE
from sb3_reinforce.diagnostics import collect_episodes

# env -> (training steps of the partly trained policy, test episodes)
STUDIES = {"CartPole-v1": (15_000, 1000), "InvertedPendulum-v5": (30_000, 1000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/results/variance")
    parser.add_argument("--envs", nargs="+", default=list(STUDIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--returns-only", action="store_true", help="only print the mean return of each policy")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for env_id in args.envs:
        steps, episodes = STUDIES[env_id]
        model_path = os.path.join(args.out, f"{env_id}_{steps}_steps.zip")
        if not os.path.exists(model_path):
            REINFORCE("MlpPolicy", env_id, seed=args.seed).learn(steps).save(model_path)
        for label, path in (("random", None), ("trained", model_path)):
            env = make_vec_env(env_id, n_envs=8, seed=args.seed)
            model = REINFORCE.load(path, env=env) if path else REINFORCE("MlpPolicy", env, seed=args.seed)
            returns = collect_episodes(model, 500).episode_returns()
            print(f"{env_id} {label} policy: mean return {returns.mean():.1f} over 500 episodes", flush=True)
        if args.returns_only:
            continue
        for label, extra in (("random", []), ("trained", ["--model", model_path])):
            command = [sys.executable, "-m", "sb3_reinforce", "variance", "--env", env_id, "--episodes", str(episodes),
                       "--seed", str(args.seed), "--out", os.path.join(args.out, f"{env_id}_{label}"), *extra]  # fmt: skip
            print("$", " ".join(command[2:]), flush=True)
            subprocess.run(command, check=True)


if __name__ == "__main__":
    main()

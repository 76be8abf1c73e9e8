"""REINFORCE's hyperparameters in the RL Zoo's format, shipped as ``sb3_reinforce.zoo_configs`` (see reinforce.yml)."""

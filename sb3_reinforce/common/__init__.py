"""Building blocks of the policy-gradient estimators: return math, baselines and rollout storage."""

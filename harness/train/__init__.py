"""The one training loop and its parts: GRPO math, arm hooks, rollouts, evaluation, checkpoints."""

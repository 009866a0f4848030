"""The one training loop and its parts: rollouts, evaluation, checkpoints (the model and its loss are policy/)."""

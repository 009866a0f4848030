"""Building and loading policies: hub or builtin bases, the local Qwen3 build, the pinned numeric environment."""

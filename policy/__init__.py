"""The policy every arm trains, under the method (harness -> baselines -> method -> policy -> sandbox).

The Policy (model.py) and what it is made of: the SVD adapter, model loading, the built-in substrates and their
pinned build, the forwards shared by the loss, the reference model, Rebound and extraction, the prompt encoder,
the GRPO loss math, and TrainConfig (the one place for defaults).
"""

"""Train representation edits (RED, LoReFT, DiReFT) and a LoRA baseline on a frozen model.

Import from the submodules: `interp.training.data` (prompt/answer pairs), `.masks` (which answer
tokens carry the loss), `.pid` (bias-norm control), `.trainer` (the loop), `.checkpoints`.
"""

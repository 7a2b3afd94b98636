"""Training persona models: LoRA SFT, engagement-weighted SFT, DPO, reward model, online RL, distillation.

Every module here imports torch/transformers/TRL lazily (inside functions) or only when imported
itself: the data pipeline and the CLI start without them. Configs (`pipeline.train.config`) are
plain pydantic and import nothing heavy.
"""

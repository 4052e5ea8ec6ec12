"""GRPO training support (paper: Training): the reward terms and the data conversion.

:func:`trl_reward_funcs` gives TRL-ready reward functions (the official rewards, one per term) and
:func:`training_example` / :func:`shapes_dataset` give rows for a TRL dataset, e.g.::

    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    from videoseg.training import shapes_dataset, trl_reward_funcs

    train = Dataset.from_list(shapes_dataset(range(100)))
    trainer = GRPOTrainer(model="Qwen/Qwen2.5-VL-3B-Instruct", reward_funcs=trl_reward_funcs("videoseg-r1"),
                          args=GRPOConfig(num_generations=8, learning_rate=1e-6, weight_decay=0.01),
                          train_dataset=train)
"""

from videoseg.training.data import object_box, object_point, object_targets, shapes_dataset, training_example
from videoseg.training.rewards import (
    negative_point_reward,
    pixelthink_total,
    segzero_total,
    total,
    trl_reward_funcs,
    videoseg_r1_total,
)

__all__ = [
    "negative_point_reward",
    "object_box",
    "object_point",
    "object_targets",
    "pixelthink_total",
    "segzero_total",
    "shapes_dataset",
    "total",
    "training_example",
    "trl_reward_funcs",
    "videoseg_r1_total",
]

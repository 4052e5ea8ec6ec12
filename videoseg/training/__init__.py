"""GRPO training support (paper: Training): the reward terms and the data conversion.

No trainer lives here: :func:`make_reward_funcs` gives TRL-ready reward functions and
:func:`training_example` / :func:`shapes_dataset` give rows for a TRL dataset, e.g.::

    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    from videoseg.training import make_reward_funcs, shapes_dataset

    train = Dataset.from_list(shapes_dataset(range(100)))
    trainer = GRPOTrainer(model="Qwen/Qwen2.5-VL-3B-Instruct", reward_funcs=make_reward_funcs(),
                          args=GRPOConfig(num_generations=8, learning_rate=1e-6, weight_decay=0.01),
                          train_dataset=train)
"""

from videoseg.training.data import object_box, object_point, object_targets, shapes_dataset, training_example
from videoseg.training.rewards import (
    RewardConfig,
    TotalReward,
    accuracy_reward,
    answer_format_reward,
    make_reward_funcs,
    negative_point_reward,
    non_repeat_reward,
    reward_terms,
    think_format_reward,
    total_reward,
)

__all__ = [
    "RewardConfig",
    "TotalReward",
    "accuracy_reward",
    "answer_format_reward",
    "make_reward_funcs",
    "negative_point_reward",
    "non_repeat_reward",
    "object_box",
    "object_point",
    "object_targets",
    "reward_terms",
    "shapes_dataset",
    "think_format_reward",
    "total_reward",
    "training_example",
]

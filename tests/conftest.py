"""Shared test setup: offline, deterministic, small thread pools (CI has 2 cores)."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.pop("SPACES_ZERO_GPU", None)

import cv2
import torch

torch.set_num_threads(2)
cv2.setNumThreads(2)

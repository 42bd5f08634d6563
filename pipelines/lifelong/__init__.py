"""Lifelong retraining on a data stream: config, persisted state, the retraining stage and its promotion gate."""

from pipelines.lifelong.config import RetrainConfig
from pipelines.lifelong.promotion import promotion_decision
from pipelines.lifelong.retrain import RetrainResult, retrain_stream

__all__ = ["RetrainConfig", "RetrainResult", "promotion_decision", "retrain_stream"]

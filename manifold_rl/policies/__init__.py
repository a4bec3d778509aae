"""Policies whose actions live on manifolds."""

from .flow_matching import FlowMatchingPolicy, FlowMatchingPolicyConfig, RolloutResult, make_chunk_dataset

__all__ = ["FlowMatchingPolicy", "FlowMatchingPolicyConfig", "RolloutResult", "make_chunk_dataset"]

"""Module attributes that must follow their (already sliced) parameters."""

from __future__ import annotations

import torch.nn as nn

__all__ = ["resize_module"]


def resize_module(m: nn.Module) -> None:
    """Update ``out_channels``, ``in_features``, ``num_features``, ``groups`` … from the weights."""
    if isinstance(m, nn.modules.conv._ConvNd):
        w = m.weight
        if m.transposed:
            if m.groups > 1:  # whole conv groups were removed
                m.groups = w.shape[0] // (m.in_channels // m.groups)
            m.in_channels, m.out_channels = w.shape[0], w.shape[1] * m.groups
        else:
            if m.groups > 1:
                m.groups = w.shape[0] // (m.out_channels // m.groups)
            m.out_channels, m.in_channels = w.shape[0], w.shape[1] * m.groups
    elif isinstance(m, nn.Linear):
        m.out_features, m.in_features = m.weight.shape
    elif isinstance(m, nn.modules.batchnorm._NormBase):
        t = m.weight if m.weight is not None else m.running_mean
        if t is not None:
            m.num_features = t.shape[0]
    elif isinstance(m, nn.GroupNorm):
        if m.weight is not None:
            per = m.num_channels // m.num_groups
            m.num_channels = m.weight.shape[0]
            m.num_groups = m.num_channels // per
    elif isinstance(m, nn.Embedding):
        m.num_embeddings, m.embedding_dim = m.weight.shape
    elif isinstance(m, (nn.LayerNorm, nn.RMSNorm)):
        if m.weight is not None:
            m.normalized_shape = tuple(m.weight.shape)
    elif isinstance(m, nn.PReLU):
        m.num_parameters = m.weight.numel()

"""scikit-learn's digits (1,797 8x8 grey images, 10 classes) as PyTorch data loaders.

The train/validation split is fixed (stratified, 80/20, ``random_state=0``); ``seed`` only drives
the shuffling of the training loader. Images are ``float32`` tensors ``(N, 1, 8, 8)`` normalised
with the training set's mean and standard deviation. Needs ``scikit-learn`` (the ``digits`` extra:
``pip install 'otograph[digits]'``), imported here only.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["digits_tensors", "digits_loaders"]


def digits_tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_val, y_val)`` of the fixed split, normalised."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise ImportError("the digits data set needs scikit-learn, which is not installed: "
                          "pip install 'otograph[digits]' (or pip install scikit-learn)") from e
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.long)
    idx = torch.arange(len(y))
    tr, va = train_test_split(idx.numpy(), test_size=0.2, stratify=y.numpy(), random_state=0)
    tr, va = torch.as_tensor(tr), torch.as_tensor(va)
    mean, std = x[tr].mean(), x[tr].std()
    x = (x - mean) / std
    return x[tr], y[tr], x[va], y[va]


def digits_loaders(batch_size: int = 64, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """``(train_loader, val_loader)``; the training loader reshuffles each epoch from ``seed``."""
    x_tr, y_tr, x_va, y_va = digits_tensors()
    g = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(x_tr, y_tr), batch_size=batch_size, shuffle=True, generator=g)
    val = DataLoader(TensorDataset(x_va, y_va), batch_size=512, shuffle=False)
    return train, val

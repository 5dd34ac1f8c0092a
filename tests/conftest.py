"""Shared fixtures: one seed per test, and one place that sets torch's thread count."""

import os

import pytest
import torch

#: test packages whose models are tiny: one thread is fastest and avoids OpenMP oversubscription
ONE_THREAD = {"hesso", "cli", "rewrite", "graph", "tracing", "report", "drawing"}
_DEFAULT = max(1, min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _torch_threads(request):
    parts = set(request.node.path.parts)
    n = 1 if parts & ONE_THREAD else _DEFAULT
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

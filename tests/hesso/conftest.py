import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread():
    """Small tensors: one thread is fastest and avoids OpenMP oversubscription on shared CI boxes."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

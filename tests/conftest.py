import pytest
import torch


@pytest.fixture(autouse=True)
def torch_threads_before():
    """Every Trainer sets torch's process-wide thread count; put it back, so that no test runs on another's count."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)

import os

import pytest
import torch

# Read by Ray once, when first imported (some test modules import it at collection): Ray stays on 127.0.0.1.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(autouse=True)
def torch_threads_before():
    """Every Trainer sets torch's process-wide thread count; put it back, so that no test runs on another's count."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)

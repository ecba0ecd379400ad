import os

import pytest
import torch

# Read by Ray once, when first imported (some test modules import it at collection): Ray stays on 127.0.0.1.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="session")
def torch_threads_at_start() -> int:
    """torch's thread count when the session began (all cores unless OMP_NUM_THREADS says fewer)."""
    return torch.get_num_threads()


@pytest.fixture(autouse=True)
def torch_threads_before(torch_threads_at_start):
    """Every Trainer sets torch's process-wide thread count; each test starts and ends on the session's count,
    so that no test runs on another's, also not on one a module-scoped fixture's training left behind."""
    torch.set_num_threads(torch_threads_at_start)
    yield torch_threads_at_start
    torch.set_num_threads(torch_threads_at_start)


@pytest.fixture(scope="module")
def local_ray():
    """An embedded Ray on 127.0.0.1 with 2 CPUs for the test module that asks for it (modules needing other
    resources define their own); shut down, by Ray itself, when the module ends."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()

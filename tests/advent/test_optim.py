"""RepeatedSGD: valeoai/ADVENT's repeated parameter listings without duplicate parameters, bit for bit."""

import copy
import io
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advent_sweep.advent.checkpoints import load_state
from advent_sweep.advent.optim import RepeatedSGD
from advent_sweep.advent.trainer import Trainer, poly_factor
from advent_sweep.model import DeepLabV2, build_segmenter
from tests.advent.conftest import NUM_CLASSES

DUPLICATES = "optimizer contains a parameter group with duplicate parameters"
# Every test here fails on torch's duplicate-parameter warning, except where the old path is built on purpose.
pytestmark = pytest.mark.filterwarnings(f"error:{DUPLICATES}")


def duplicate_sgd(params: list, **hyper) -> torch.optim.SGD:
    """The old path: torch.optim.SGD given a parameter once per listing (its warning suppressed)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DUPLICATES)
        return torch.optim.SGD(params, **hyper)


def official_listing(seg: DeepLabV2, lr: float) -> list[dict]:
    """valeoai/ADVENT's optim_parameters, duplicates and all, as the trainer built it before RepeatedSGD."""
    backbone = [p for top in seg.backbone.children() for m in top.modules() for p in m.parameters() if p.requires_grad]
    heads = [p for h in (seg.aux_head, seg.main_head) for p in h.parameters() if p.requires_grad]
    return [{"params": backbone, "lr": lr}, {"params": heads, "lr": 10 * lr}]


@pytest.mark.parametrize("momentum, weight_decay, foreach", [
    (0.9, 5e-4, False),  # the trainer's old setting
    (0.9, 5e-4, None),  # torch's default: on CPU the same single-tensor loop
    (0.0, 5e-4, False),
    (0.9, 0.0, False),
])
def test_repeated_sgd_equals_sgd_on_duplicate_listings_bit_for_bit(momentum, weight_decay, foreach):
    torch.manual_seed(0)
    new_model = build_segmenter("resnet18", NUM_CLASSES)
    old_model = copy.deepcopy(new_model)
    hyper = dict(lr=1e-2, momentum=momentum, weight_decay=weight_decay)
    new = RepeatedSGD(new_model.parameter_groups(1e-2, "official"), **hyper)
    old = duplicate_sgd(official_listing(old_model, 1e-2), foreach=foreach, **hyper)
    assert set(new.param_groups[0]["repeats"]) == {1, 3, 4}
    assert len(old.param_groups[0]["params"]) == sum(new.param_groups[0]["repeats"])
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda i: poly_factor(i, 10, 0.9)) for o in (old, new)]
    images, labels = torch.rand(2, 3, 32, 32), torch.randint(0, NUM_CLASSES, (2, 4, 4))
    start = next(new_model.parameters()).detach().clone()

    for _ in range(5):
        new.zero_grad()
        aux, main = new_model(images)
        (F.cross_entropy(main, labels) + 0.1 * F.cross_entropy(aux, labels)).backward()
        for p_old, p_new in zip(old_model.parameters(), new_model.parameters()):
            p_old.grad = None if p_new.grad is None else p_new.grad.clone()
        old.step()
        new.step()
        for scheduler in schedulers:
            scheduler.step()
        assert [g["lr"] for g in old.param_groups] == [g["lr"] for g in new.param_groups]
        for (name, p_old), p_new in zip(old_model.named_parameters(), new_model.parameters()):
            assert torch.equal(p_old, p_new), name
            old_buffer, new_buffer = old.state[p_old].get("momentum_buffer"), new.state[p_new].get("momentum_buffer")
            if momentum and p_new.requires_grad:
                assert torch.equal(old_buffer, new_buffer), name
            else:
                assert old_buffer is new_buffer is None, name
    assert not torch.equal(start, next(new_model.parameters()))


@pytest.mark.parametrize("optimizer", ["repeated", "torch duplicate listing"])
def test_one_parameter_listed_three_times_matches_the_hand_computation(optimizer):
    """x = 2, gradient 1, lr 1/2, momentum 1/2, weight decay 1/4: every value is exact in binary.

    Each listing: d = 1 + x/4, then x −= b/2. Step 1 (no buffer yet): each listing starts its own
    buffer b = d, and the last one is kept. Step 2: the listings share it, b = b/2 + d.
    """
    param = nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    hyper = dict(lr=0.5, momentum=0.5, weight_decay=0.25)
    if optimizer == "repeated":
        opt = RepeatedSGD([{"params": [param], "repeats": [3]}], **hyper)
    else:
        opt = duplicate_sgd([param, param, param], foreach=False, **hyper)
    # step 1: d = b = 1.5, x = 1.25; d = b = 1.3125, x = 0.59375; d = b = 1.1484375, x = 0.01953125
    # step 2: d = 1.0048828125,    b = 0.57421875 + d = 1.5791015625,    x = -0.77001953125
    #         d = 0.8074951171875, b = 0.78955078125 + d = 1.5970458984375, x = -1.56854248046875
    #         d = 0.6078643798828125, b = 0.79852294921875 + d = 1.4063873291015625, x = -2.27173614501953125
    for x, b in [(0.01953125, 1.1484375), (-2.27173614501953125, 1.4063873291015625)]:
        param.grad = torch.ones_like(param)
        opt.step()
        assert (param.item(), opt.state[param]["momentum_buffer"].item()) == (x, b)


def test_a_group_without_repeats_updates_each_param_once():
    param = nn.Parameter(torch.tensor([1.0]))
    opt = RepeatedSGD([param], lr=0.5)
    param.grad = torch.ones_like(param)
    opt.step()
    assert opt.param_groups[0]["repeats"] == [1] and param.item() == 0.5


def test_repeats_must_give_each_param_a_positive_count():
    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="repeats"):
        RepeatedSGD([{"params": [a, b], "repeats": [3]}], lr=0.1)
    with pytest.raises(ValueError, match="repeats"):
        RepeatedSGD([{"params": [a, b], "repeats": [3, 0]}], lr=0.1)


def test_state_saved_with_other_repeats_is_refused():
    param = nn.Parameter(torch.zeros(1))
    official = RepeatedSGD([{"params": [param], "repeats": [3]}], lr=0.1)
    with pytest.raises(ValueError, match="other repeat counts"):
        RepeatedSGD([param], lr=0.1).load_state_dict(official.state_dict())


def make_trainer(config, domains) -> Trainer:
    return Trainer(config, *domains, num_classes=NUM_CLASSES)


def test_official_training_lists_each_param_once_and_raises_no_duplicate_warning(tiny_config, tiny_domains):
    trainer = make_trainer(tiny_config(method="advent", param_repeats="official"), tiny_domains)
    for _ in range(2):
        trainer.step()
    backbone, heads = trainer.optimizer.param_groups
    assert len({id(p) for p in backbone["params"]}) == len(backbone["params"])
    assert set(backbone["repeats"]) == {1, 3, 4} and set(heads["repeats"]) == {1}
    param = nn.Parameter(torch.zeros(1))
    with pytest.raises(UserWarning, match="duplicate parameters"):  # the filter is live: the old path would fail here
        torch.optim.SGD([param, param], lr=1.0)


def test_official_repeats_resume_exactly(tiny_config, tiny_domains):
    config = tiny_config(method="minent", param_repeats="official")
    straight = make_trainer(config, tiny_domains)
    for _ in range(4):
        straight.step()
    first = make_trainer(config, tiny_domains)
    for _ in range(2):
        first.step()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = make_trainer(config, tiny_domains)
    resumed.load_state_dict(load_state(buffer))
    for _ in range(2):
        resumed.step()

    for name, tensor in straight.segmenter.state_dict().items():
        assert torch.equal(tensor, resumed.segmenter.state_dict()[name]), name
    straight_state, resumed_state = straight.optimizer.state_dict(), resumed.optimizer.state_dict()
    assert straight_state["param_groups"] == resumed_state["param_groups"]
    for index, state in straight_state["state"].items():
        assert torch.equal(state["momentum_buffer"], resumed_state["state"][index]["momentum_buffer"])

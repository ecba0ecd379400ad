import io
import math
import os

import pytest
import torch
from torch import nn

from advent_sweep.advent.checkpoints import load_state
from advent_sweep.advent.trainer import Trainer, use_deterministic_cuda
from advent_sweep.data.labels import MIOU_13_CLASS_NAMES, protocol_class_names
from advent_sweep.errors import ConfigError, TrainingDiverged
from tests.advent.conftest import NUM_CLASSES


def make_trainer(config, domains, **kwargs):
    source, target = domains
    return Trainer(config, source, target, num_classes=NUM_CLASSES, **kwargs)


def test_threads_set_torch_threads_and_are_recorded(tiny_config, tiny_domains):
    trainer = make_trainer(tiny_config(threads=1), tiny_domains)
    assert torch.get_num_threads() == trainer.threads == 1
    assert trainer.config.threads == trainer.state_dict()["config"]["threads"] == 1


def test_threads_left_out_resolve_to_torchs_current_count(tiny_config, tiny_domains, torch_threads_before):
    trainer = make_trainer(tiny_config(), tiny_domains)
    assert trainer.threads == trainer.config.threads == torch.get_num_threads() == torch_threads_before


@pytest.fixture
def restore_determinism():
    """The deterministic switches are process-wide; put them back as the other tests expect them."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield before
    torch.use_deterministic_algorithms(before[0])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1:]


def test_deterministic_changes_nothing_on_cpu(tiny_config, tiny_domains, restore_determinism):
    make_trainer(tiny_config(deterministic=True), tiny_domains)
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark) == restore_determinism


def test_deterministic_cuda_switches_on_and_off(monkeypatch, restore_determinism):
    """What a CUDA trainer applies (this runs without a GPU: the switches are plain torch settings)."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    use_deterministic_cuda(True)
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ.pop("CUBLAS_WORKSPACE_CONFIG") == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    use_deterministic_cuda(True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8", "a value the user set is kept"
    use_deterministic_cuda(False)
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_trainer_applies_its_deterministic_setting(tiny_config, tiny_domains, restore_determinism):
    make_trainer(tiny_config(device="cuda", deterministic=True), tiny_domains).step()
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    make_trainer(tiny_config(device="cuda"), tiny_domains)
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic


def test_source_only_and_minent_build_no_discriminator(tiny_config, tiny_domains):
    for method in ("source_only", "minent"):
        trainer = make_trainer(tiny_config(method=method), tiny_domains)
        assert len(trainer.discriminators) == 0
        assert trainer.discriminator_optimizers == {}
    advent = make_trainer(tiny_config(method="advent"), tiny_domains)
    assert set(advent.discriminators) == {"aux", "main"}
    single = make_trainer(tiny_config(method="advent", multi_level=False), tiny_domains)
    assert set(single.discriminators) == {"main"}


def test_losses_each_method_reports(tiny_config, tiny_domains):
    expected = {
        "source_only": {"loss_seg_src_main", "loss_seg_src_aux"},
        "minent": {"loss_seg_src_main", "loss_seg_src_aux", "loss_ent_trg_main", "loss_ent_trg_aux"},
        "advent": {"loss_seg_src_main", "loss_seg_src_aux", "loss_adv_trg_main", "loss_adv_trg_aux", "loss_d_main", "loss_d_aux"},
    }
    expected["advent_minent"] = expected["minent"] | expected["advent"]
    for method, names in expected.items():
        assert set(make_trainer(tiny_config(method=method), tiny_domains).step()) == names


def test_adversarial_step_keeps_gradients_apart(tiny_config, tiny_domains):
    """D gets no gradient from the segmenter's adversarial loss; the segmenter none from D's loss."""
    trainer = make_trainer(tiny_config(method="advent", lambda_seg_main=0.0, lambda_seg_aux=0.0), tiny_domains)
    source, target = tiny_domains
    images, labels = source.tensors[0][:2], source.tensors[1][:2]
    target_images = target.tensors[0][:2]
    d_grads, seg_grads = [], []

    def record_backward(loss):
        before_d = [p.grad.clone() if p.grad is not None else None for p in trainer.discriminators.parameters()]
        before_seg = [p.grad.clone() if p.grad is not None else None for p in trainer.segmenter.parameters()]
        original_backward(loss)
        changed = lambda before, params: any(
            (p.grad is not None) and (b is None or not torch.equal(b, p.grad)) for b, p in zip(before, params)
        )
        d_grads.append(changed(before_d, trainer.discriminators.parameters()))
        seg_grads.append(changed(before_seg, trainer.segmenter.parameters()))

    original_backward = trainer._backward
    trainer._backward = record_backward
    trainer.train_step(images, labels, target_images)
    # backward calls: 1 source CE (λ_seg = 0), 2 target adversarial, 3 D aux, 4 D main
    assert d_grads == [False, False, True, True]
    assert seg_grads[1] is True and seg_grads[2] is False and seg_grads[3] is False


def test_exact_resume_equals_straight_run(tiny_config, tiny_domains):
    config = tiny_config(method="advent_minent", class_prior_mu=0.5)
    prior = [0.25] * NUM_CLASSES
    straight = make_trainer(config, tiny_domains, class_prior=prior)
    for _ in range(6):
        straight.step()

    first = make_trainer(config, tiny_domains, class_prior=prior)
    for _ in range(3):
        first.step()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = make_trainer(config, tiny_domains, class_prior=prior)
    resumed.load_state_dict(load_state(buffer))
    for _ in range(3):
        resumed.step()

    assert resumed.iteration == straight.iteration == 6
    for name, tensor in straight.segmenter.state_dict().items():
        assert torch.equal(tensor, resumed.segmenter.state_dict()[name]), name
    for name, tensor in straight.discriminators.state_dict().items():
        assert torch.equal(tensor, resumed.discriminators.state_dict()[name]), name


def test_poly_learning_rate_and_head_multiplier(tiny_config, tiny_domains):
    trainer = make_trainer(tiny_config(method="source_only", lr=1e-2, poly_horizon=100, poly_power=0.9), tiny_domains)
    for _ in range(10):
        trainer.step()
    backbone, heads = trainer.optimizer.param_groups
    assert backbone["lr"] == pytest.approx(1e-2 * (1 - 10 / 100) ** 0.9)
    assert heads["lr"] == pytest.approx(10 * backbone["lr"])


def test_nan_loss_raises_diverged_before_weights_move(tiny_config, tiny_domains):
    trainer = make_trainer(tiny_config(method="minent"), tiny_domains)
    before = {k: v.detach().clone() for k, v in trainer.segmenter.named_parameters()}
    source, target = tiny_domains
    poisoned = target.tensors[0][:2].clone()
    poisoned[0, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match="iteration 0"):
        trainer.train_step(source.tensors[0][:2], source.tensors[1][:2], poisoned)
    assert all(torch.equal(before[k], v) for k, v in trainer.segmenter.named_parameters())


def test_non_finite_weights_raise_diverged_at_evaluation(tiny_config, tiny_domains):
    trainer = make_trainer(tiny_config(method="source_only"), tiny_domains)
    trainer.step()
    with torch.no_grad():
        next(trainer.segmenter.parameters()).fill_(float("inf"))
    with pytest.raises(TrainingDiverged, match="iteration 1: target_entropy=nan"):
        trainer.evaluate(tiny_domains[1])


def test_class_prior_is_required_when_mu_is_positive(tiny_config, tiny_domains):
    with pytest.raises(ConfigError, match="class_prior"):
        make_trainer(tiny_config(class_prior_mu=0.3), tiny_domains)


def test_class_prior_needs_one_entry_per_class(tiny_config, tiny_domains):
    with pytest.raises(ConfigError, match="class_prior has 3 entries but num_classes is 4"):
        make_trainer(tiny_config(class_prior_mu=0.3), tiny_domains, class_prior=[0.5, 0.25, 0.25])


class ConstantLogit(nn.Module):
    """A stub D that answers the logit x on a 2×2 patch grid for any map (the map's gradient still flows)."""

    def __init__(self, logit: float) -> None:
        super().__init__()
        self.logit = logit

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.logit + 0 * maps[:, :1, :2, :2]


def test_adversarial_losses_use_source_0_target_1_and_halve_d(tiny_config, tiny_domains):
    """With D ≡ x: the segmenter fools D into "source" (label 0): BCE = softplus(x) = ln(1 + e^x);
    D's loss is (BCE(x, 0) + BCE(x, 1)) / 2 = (softplus(x) + softplus(−x)) / 2. For x = 0.7:
    softplus(0.7) = ln(3.0137527) = 1.1031860, softplus(−0.7) = 1.1031860 − 0.7 = 0.4031860."""
    trainer = make_trainer(tiny_config(method="advent", multi_level=False), tiny_domains)
    trainer.discriminators["main"] = ConstantLogit(0.7)
    source, target = tiny_domains
    step_losses = trainer.train_step(source.tensors[0][:2], source.tensors[1][:2], target.tensors[0][:2])
    assert step_losses["loss_adv_trg_main"] == pytest.approx(1.1031860, rel=1e-6)
    assert step_losses["loss_d_main"] == pytest.approx((1.1031860 + 0.4031860) / 2, rel=1e-6)


def test_synthia_16_classes_also_report_miou_13(tiny_config, tiny_domains):
    """mIoU* comes from the same 16-class predictions: the nan-mean of the 13 classes' IoU."""
    names = protocol_class_names(16)
    source, target = tiny_domains
    trainer = Trainer(tiny_config(method="source_only"), source, target, num_classes=16, class_names=names)
    metrics = trainer.evaluate(target)
    counted = [metrics[f"iou.{name}"] for name in MIOU_13_CLASS_NAMES if not math.isnan(metrics[f"iou.{name}"])]
    assert counted and metrics["target_miou_13"] == pytest.approx(sum(counted) / len(counted))
    assert "target_miou_13" not in make_trainer(tiny_config(method="source_only"), tiny_domains).evaluate(target)


@pytest.mark.parametrize("method", ["source_only", "advent"])
def test_small_backbone_learns_the_target_too(tiny_config, tiny_domains, method):
    """Measured (resnet18, CPU, 1 or all threads): target mIoU 9.8 untrained → 36.5–42.2 (source_only) /
    47.6–51.6 (advent) after 40 steps; target entropy 0.99 → 0.04 / 0.10–0.11; source CE falls 7- to 20-fold."""
    trainer = make_trainer(tiny_config(method=method, lr=2e-2), tiny_domains)
    untrained = trainer.evaluate(tiny_domains[1])
    first = [trainer.step()["loss_seg_src_main"] for _ in range(5)]
    for _ in range(30):
        trainer.step()
    last = [trainer.step()["loss_seg_src_main"] for _ in range(5)]
    assert sum(last) / 5 < 0.3 * sum(first) / 5
    trained = trainer.evaluate(tiny_domains[1])
    assert trained["target_miou"] > untrained["target_miou"] + 20.0
    assert trained["target_entropy"] < 0.3 * untrained["target_entropy"]
    assert {f"iou.{c}" for c in range(NUM_CLASSES)} <= set(trained)


def test_bn_momentum_sets_how_far_one_batch_moves_the_running_statistics(tiny_config, tiny_domains):
    """Running mean after one training forward from 0: momentum × the batch mean, so 0.01 moves it a tenth of 0.1."""
    moved = {}
    for momentum in (None, 0.01):
        trainer = make_trainer(tiny_config(method="source_only", bn_momentum=momentum), tiny_domains)
        assert {m.momentum for m in trainer.segmenter.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {momentum or 0.1}
        trainer.step()
        moved[momentum] = trainer.segmenter.backbone.bn1.running_mean.clone()
    assert torch.allclose(moved[0.01], moved[None] * 0.1, rtol=1e-5, atol=1e-8)
    assert moved[None].abs().sum() > 0

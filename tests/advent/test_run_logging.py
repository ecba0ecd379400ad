"""What a run shows while it trains: TensorBoard events at trainer iterations, read back with TensorBoard's own reader."""

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from advent_sweep.advent.run_logger import FanOutLogger, TensorBoardLogger
from advent_sweep.advent.trainer import Trainer
from advent_sweep.cli import main
from advent_sweep.data.labels import protocol_class_names
from advent_sweep.data.palette import colorize, palette_for
from advent_sweep.data.synthetic import SYNTHETIC_CLASS_NAMES

RUN = {
    "method": "advent_minent", "backbone": "resnet18", "multi_level": True, "param_repeats": "unique",
    "lr": 5e-3, "iterations": 6, "poly_horizon": 6, "eval_interval": 3, "batch_size_source": 2,
    "batch_size_target": 2, "eval_batch_size": 4, "device": "cpu", "class_prior_mu": 0.5,
    "log_interval": 2, "viz_interval": 3,
    "data": {"synthetic": {"seed": 0, "size": [48, 32], "num_train": 8, "num_val": 4}},
}
LOSS_TAGS = {f"loss/{name}" for name in (
    "seg_src_main", "seg_src_aux", "ent_trg_main", "ent_trg_aux", "adv_trg_main", "adv_trg_aux", "d_main", "d_aux",
    "class_prior")}
TRAIN_SCALARS = LOSS_TAGS | {"lr/segmenter", "lr/segmenter_heads", "lr/discriminator"} | {
    f"discriminator/{domain}_{level}" for domain in ("source", "target") for level in ("main", "aux")}
EVAL_SCALARS = {"eval/target_miou", "eval/target_entropy", "eval/target_im", "eval/target_bnm", "eval/target_snd",
                "eval/source_val_miou"} | {f"iou/{name}" for name in SYNTHETIC_CLASS_NAMES}
TRAIN_IMAGES = {f"train/{name}" for name in ("source_image", "source_label", "source_prediction", "target_image",
                                             "target_prediction", "target_entropy")}
EVAL_IMAGES = {f"val/{k}/{name}" for k in (0, 1) for name in ("image", "label", "prediction", "entropy")}


def read_events(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def train(tmp_path: Path, values: dict, *extra: str) -> int:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(values))
    return main(["train", str(config), "--output-dir", str(tmp_path / "run"), "--quiet", *extra])


@pytest.mark.slow
def test_train_logs_every_loss_at_log_intervals_evaluations_and_panels_at_trainer_iterations(tmp_path):
    assert train(tmp_path, RUN) == 0
    events = read_events(tmp_path / "run")
    tags = events.Tags()
    assert set(tags["scalars"]) == TRAIN_SCALARS | EVAL_SCALARS
    for tag in TRAIN_SCALARS:
        assert [e.step for e in events.Scalars(tag)] == [2, 4, 6], tag
    for tag in EVAL_SCALARS:
        assert [e.step for e in events.Scalars(tag)] == [3, 6], tag
    evaluations = json.loads((tmp_path / "run" / "metrics.json").read_text())["evaluations"]
    assert [e.value for e in events.Scalars("eval/target_miou")] == pytest.approx([e["target_miou"] for e in evaluations])
    assert [e.value for e in events.Scalars("iou/road")] == pytest.approx([e["iou.road"] for e in evaluations])
    lrs = [e.value for e in events.Scalars("lr/segmenter")]
    assert lrs == pytest.approx([5e-3 * (1 - i / 6) ** 0.9 for i in (1, 3, 5)])  # the lr each logged step used
    assert [e.value for e in events.Scalars("lr/segmenter_heads")] == pytest.approx([10 * lr for lr in lrs])
    assert all(0 < e.value < 1 for e in events.Scalars("discriminator/target_main"))

    assert set(tags["images"]) == TRAIN_IMAGES | EVAL_IMAGES
    for tag in TRAIN_IMAGES | EVAL_IMAGES:
        assert [(e.step, e.width, e.height) for e in events.Images(tag)] == [(3, 48, 32), (6, 48, 32)], tag


@pytest.mark.slow
def test_panels_draw_labels_in_the_dataset_colours_and_entropy_in_grey(tmp_path):
    assert train(tmp_path, {**RUN, "iterations": 3, "log_interval": 0}) == 0
    events = read_events(tmp_path / "run")
    assert set(events.Tags()["scalars"]) == EVAL_SCALARS
    palette = palette_for(SYNTHETIC_CLASS_NAMES)

    def pixels(tag: str) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(events.Images(tag)[-1].encoded_image_string)).convert("RGB"))

    label_colours = {tuple(c) for c in pixels("train/source_label").reshape(-1, 3)}
    assert label_colours <= {tuple(c) for c in palette[: len(SYNTHETIC_CLASS_NAMES)]} | {(0, 0, 0)}
    assert len(label_colours) >= 3
    entropy = pixels("train/target_entropy")
    assert (entropy[..., 0] == entropy[..., 1]).all() and (entropy[..., 1] == entropy[..., 2]).all()


class Recorder:
    def __init__(self):
        self.scalars_at, self.images_at = {}, {}

    def scalars(self, step, values):
        self.scalars_at.setdefault(step, {}).update(values)

    def images(self, step, images):
        self.images_at.setdefault(step, {}).update(images)

    def flush(self):
        pass

    def close(self):
        pass


def test_source_only_logs_source_losses_and_draws_target_panels_at_evaluation_only(tiny_config, tiny_domains):
    recorder = Recorder()
    trainer = Trainer(tiny_config(method="source_only", iterations=4, log_interval=1, viz_interval=2, multi_level=False),
                      *tiny_domains, num_classes=4, logger=FanOutLogger([recorder]))
    for _ in range(4):
        trainer.step()
    assert sorted(recorder.scalars_at) == [1, 2, 3, 4]
    assert set(recorder.scalars_at[1]) == {"loss/seg_src_main", "lr/segmenter", "lr/segmenter_heads"}
    assert sorted(recorder.images_at) == [2, 4]
    assert set(recorder.images_at[2]) == {"train/source_image", "train/source_label", "train/source_prediction"}
    trainer.evaluate(tiny_domains[1])
    assert {"val/0/prediction", "val/1/entropy"} <= set(recorder.images_at[4])
    assert recorder.images_at[4]["val/0/prediction"].shape == (32, 32, 3)


def test_without_a_logger_or_with_intervals_0_nothing_is_logged(tiny_config, tiny_domains):
    recorder = Recorder()
    trainer = Trainer(tiny_config(iterations=3, log_interval=0, viz_interval=0), *tiny_domains, num_classes=4,
                      logger=recorder)
    trainer.step()
    trainer.evaluate(tiny_domains[1])
    assert recorder.images_at == {} and list(recorder.scalars_at) == [1]  # the evaluation only
    assert all(tag.startswith(("eval/", "iou/")) for tag in recorder.scalars_at[1])
    silent = Trainer(tiny_config(iterations=3), *tiny_domains, num_classes=4)
    assert silent.logger is None and silent.step()["loss_seg_src_main"] > 0


@pytest.mark.parametrize(("change", "named"), [({"log_interval": -1}, "log_interval"), ({"viz_interval": -5}, "viz_interval")])
def test_a_negative_interval_exits_2_naming_the_field_and_writes_nothing(tmp_path, capsys, change, named):
    assert train(tmp_path, {**RUN, **change}) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_tensorboard_logger_uploads_its_events_to_a_non_local_filesystem_at_each_flush(tmp_path):
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    remote = pafs.SubTreeFileSystem(str(bucket), pafs.LocalFileSystem())  # any pyarrow filesystem that is not local
    logger = TensorBoardLogger("sweep/trial_0", filesystem=remote)
    logger.scalars(1, {"loss/x": 1.0})
    logger.flush()
    assert [e.step for e in read_events(bucket / "sweep" / "trial_0").Scalars("loss/x")] == [1]
    logger.scalars(2, {"loss/x": 2.0})
    logger.images(2, {"train/p": np.zeros((4, 6, 3), dtype=np.uint8)})
    logger.close()
    events = read_events(bucket / "sweep" / "trial_0")
    assert [e.step for e in events.Scalars("loss/x")] == [1, 2]
    assert [(e.width, e.height) for e in events.Images("train/p")] == [(6, 4)]
    assert not Path(logger.staging.name).exists()


def test_palette_is_cityscapes_by_class_name_with_ignore_black():
    palette = palette_for(protocol_class_names(16))
    names = protocol_class_names(16)
    assert tuple(palette[names.index("road")]) == (128, 64, 128)
    assert tuple(palette[names.index("sky")]) == (70, 130, 180)  # sky is class 9 of 16, 10 of 19: same colour
    assert tuple(palette_for(protocol_class_names(19))[10]) == (70, 130, 180)
    assert tuple(palette_for(SYNTHETIC_CLASS_NAMES)[SYNTHETIC_CLASS_NAMES.index("car")]) == (0, 0, 142)
    image = colorize(np.array([[0, 255], [1, 0]]), palette)
    assert image.dtype == np.uint8 and image.shape == (2, 2, 3)
    assert image[0, 1].tolist() == [0, 0, 0] and image[1, 0].tolist() == [244, 35, 232]
    other = palette_for(["a", "b", "c"])
    assert len({tuple(c) for c in other[:3]}) == 3 and (0, 0, 0) not in {tuple(c) for c in other[:3]}


@pytest.mark.slow
def test_a_killed_and_resumed_run_logs_each_tag_and_step_once_in_increasing_order(tmp_path):
    values = {**RUN, "iterations": 12, "poly_horizon": 12, "eval_interval": 4, "log_interval": 1, "viz_interval": 2}
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(values))
    run = tmp_path / "run"
    command = [str(Path(sys.executable).parent / "advent-sweep"), "train", str(config), "--output-dir", str(run), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    # Killed after its first checkpoint (iteration 4) and after it logged past it (flushed events reach the file).
    while process.poll() is None and time.monotonic() < deadline:
        if (run / "checkpoint.pt").exists() and any(e.step > 5 for e in _scalars_or_none(run, "loss/seg_src_main")):
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = json.loads((run / "metrics.json").read_text())["evaluations"]
    assert saved[-1]["iteration"] < 12, "the run was not interrupted before its end"

    assert main(["train", str(config), "--output-dir", str(run), "--resume", "--quiet"]) == 0
    assert len(list(run.glob("events.out.tfevents.*"))) == 2
    events = read_events(run)
    for tag in events.Tags()["scalars"]:
        steps = [e.step for e in events.Scalars(tag)]
        expected = [4, 8, 12] if tag.startswith(("eval/", "iou/")) else list(range(1, 13))
        assert steps == expected, tag
    for tag in events.Tags()["images"]:
        steps = [e.step for e in events.Images(tag)]
        assert steps == ([4, 8, 12] if tag.startswith("val/") else [2, 4, 6, 8, 10, 12]), tag


def _scalars_or_none(run: Path, tag: str) -> list:
    if not list(run.glob("events.out.tfevents.*")):
        return []
    events = read_events(run)
    return events.Scalars(tag) if tag in events.Tags()["scalars"] else []


@pytest.mark.slow
def test_train_logs_to_mlflow_and_wandb_offline_at_trainer_iterations(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    from mlflow import MlflowClient

    monkeypatch.setenv("WANDB_SILENT", "true")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert train(tmp_path, {**RUN, "viz_interval": 0}, "--mlflow", uri, "--wandb", "offline") == 0
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("advent-sweep-train").experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.params["method"] == "advent_minent" and run.data.params["data.synthetic.num_val"] == "4"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss/d_main")) == [2, 4, 6]
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "iou/road")) == [3, 6]
    assert len(list((tmp_path / "run").glob("wandb/offline-run-*/run-*.wandb"))) == 1


def test_tensorboard_view_copies_a_uris_event_files_and_then_only_those_that_changed(tmp_path):
    from advent_sweep.storage import filesystem_and_path
    from advent_sweep.tensorboard_view import sync_event_files

    sweep = tmp_path / "sweep"
    for trial in ("trial_a", "trial_b"):
        logger = TensorBoardLogger(sweep / trial)
        logger.scalars(1, {"loss/x": 1.0})
        logger.close()
    (sweep / "trial_a" / "checkpoint.pt").write_bytes(b"not copied")
    filesystem, root = filesystem_and_path(f"file://{sweep}")
    copy = tmp_path / "copy"
    assert sync_event_files(filesystem, root, str(copy)) == 2
    assert sorted(p.parent.name for p in copy.glob("*/events.out.tfevents.*")) == ["trial_a", "trial_b"]
    assert not (copy / "trial_a" / "checkpoint.pt").exists()
    assert sync_event_files(filesystem, root, str(copy)) == 0
    logger = TensorBoardLogger(sweep / "trial_b")
    logger.scalars(2, {"loss/x": 2.0})
    logger.close()
    assert sync_event_files(filesystem, root, str(copy)) == 1
    assert [e.step for e in read_events(copy / "trial_b").Scalars("loss/x")] == [1, 2]

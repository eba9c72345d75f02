"""The training loop on a tiny model: loss goes down, checkpoints resume, hooks for later modules work."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import RTDetrResNetConfig

from sodviz.detector.inference import run_inference
from sodviz.detector.loading import load_detector
from sodviz.modules import modules_of, split_state_dict
from sodviz.synth.datasets import write_dataset
from sodviz.synth.scenes import SceneConfig
from sodviz.training.data import CocoCrops, CropBatches, _crop_boxes, _random_flip_rotate
from sodviz.training.loop import train
from sodviz.training.recipe import CLASS_HEADS, TrainConfig, initial_model, lr_factor, parameter_groups

TINY_MODEL = dict(
    backbone_config=RTDetrResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 24, 32],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],
    ),
    encoder_in_channels=[16, 24, 32],
    encoder_hidden_dim=32,
    encoder_ffn_dim=64,
    encoder_attention_heads=2,
    d_model=32,
    decoder_in_channels=[32, 32, 32],
    decoder_ffn_dim=64,
    decoder_layers=1,
    decoder_attention_heads=2,
    num_queries=30,
    num_denoising=10,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    config = SceneConfig(min_side=256, max_side=256)
    return write_dataset(root, "train", 3, config=config), write_dataset(root, "val", 2, config=config)


def _config(dataset, out, **changes) -> TrainConfig:
    train_folder, val_folder = dataset
    settings = dict(
        data=str(train_folder),
        val_data=str(val_folder),
        out=str(out),
        input_size=96,
        batch_size=2,
        steps=40,
        lr=2e-3,
        warmup_steps=1,
        eval_every=40,
        eval_images=2,
        checkpoint_every=20,
        zoom_range=(0.8, 1.2),
        channels_last=False,
        workers=0,
        model=TINY_MODEL,
    )
    return TrainConfig(**(settings | changes))


def _fixed_batch_loss(model, folder) -> float:
    """The training loss of four fixed crops (train mode for the matcher; denoising seeded)."""
    from sodviz.training.loop import to_pixel_values

    crops = CocoCrops(folder, input_size=96, zoom_range=(1.0, 1.0), seed=123)
    batch = [crops.sample() for _ in range(4)]
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        pixels = to_pixel_values(np.stack([b[0] for b in batch]), channels_last=False)
        return model(pixel_values=pixels, labels=[b[1] for b in batch]).loss.item()


def test_tiny_run_lowers_the_loss_and_exports_a_loadable_model(dataset, tmp_path):
    # The loss of one fixed batch, before and after: the running loss of 40 random crops is too
    # noisy to compare (its last-10 / first-5 ratio was 0.86-0.94 on two machines at the same seed).
    config = _config(dataset, tmp_path / "run", lr=1e-3)
    torch.manual_seed(config.seed)
    before = _fixed_batch_loss(initial_model(config, ["vehicle", "person", "boat", "truck"]), dataset[0])
    folder = train(config)
    log = json.loads((folder / "training_log.json").read_text())["log"]
    assert len(log) == 40
    after = _fixed_batch_loss(load_detector(folder).model, dataset[0])
    assert after < 0.9 * before, (before, after)  # 11.07 -> 9.03 here
    assert "AP50" in log[-1]["val"]
    detector = load_detector(folder)
    assert detector.input_size == 96 and detector.class_names == ("vehicle", "person", "boat", "truck")
    result = run_inference(detector, np.zeros((120, 100, 3), np.uint8), cache=None)
    assert result.num_queries == 30


def test_training_resumes_from_its_checkpoint(dataset, tmp_path):
    train(_config(dataset, tmp_path / "run", steps=4, checkpoint_every=2, val_data=None))
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 4
    folder = train(_config(dataset, tmp_path / "run", steps=6, checkpoint_every=2, val_data=None))
    log = json.loads((folder / "training_log.json").read_text())["log"]
    assert [record["step"] for record in log] == [1, 2, 3, 4, 5, 6]


def test_extra_modules_and_a_replacement_loss_are_trained(dataset, tmp_path):
    calls = []

    def insert_module(model):
        model.extra_scale = torch.nn.Parameter(torch.ones(1))
        original = model.model.decoder.forward

        def forward(*args, **kwargs):
            out = original(*args, **kwargs)
            out.intermediate_logits = out.intermediate_logits * model.extra_scale
            return out

        model.model.decoder.forward = forward
        return model

    def counting_loss(*args, **kwargs):
        from transformers.loss.loss_rt_detr import RTDetrForObjectDetectionLoss

        calls.append(1)
        return RTDetrForObjectDetectionLoss(*args, **kwargs)

    train(
        _config(dataset, tmp_path / "run", steps=3, val_data=None),
        prepare_model=insert_module,
        loss_function=counting_loss,
    )
    assert len(calls) == 3


def test_fine_tuning_with_modules_starts_from_init_and_exports_them(dataset, tmp_path):
    base = train(_config(dataset, tmp_path / "base", steps=2, val_data=None))
    config = _config(
        dataset, tmp_path / "ft", steps=2, val_data=None, init=str(base), modules=("fine", "cctm", "boost")
    )
    model = initial_model(config, ["vehicle", "person", "boat", "truck"])
    start = load_detector(base).model.state_dict()
    own, _ = split_state_dict(model)
    assert all(torch.equal(own[name], start[name]) for name in start)  # the init's weights, not random
    groups = parameter_groups(model, config)
    assert [g.get("lr", config.lr) for g in groups] == [config.lr, config.lr * config.module_lr_scale]
    detector = load_detector(train(config))
    assert modules_of(detector.model).config.names == ("fine", "cctm", "boost")
    with pytest.raises(ValueError, match="unknown modules"):
        initial_model(_config(dataset, tmp_path / "x", modules=("fpn",)), ["vehicle"])


@pytest.mark.parametrize(
    ("box", "kept"),
    [
        ([10, 10, 20, 20, 0], True),  # inside
        ([95, 10, 110, 20, 1], False),  # mostly outside: dropped
        ([-2, 10, 10, 20, 1], True),  # a little outside: clipped, kept
    ],
)
def test_crop_boxes(box, kept):
    boxes = _crop_boxes(np.array([box], np.float32), 0, 0, 100)
    assert len(boxes) == int(kept)
    if kept:
        assert boxes[0, 0] >= 0 and boxes[0, 2] <= 100 and boxes[0, 4] == box[4]


def test_flips_and_turns_move_boxes_with_pixels():
    rng = np.random.default_rng(0)
    for _ in range(8):
        pixels = np.zeros((64, 64, 3), np.uint8)
        pixels[5:15, 30:50] = 255
        boxes = np.array([[30, 5, 50, 15, 0]], np.float32)
        turned, moved = _random_flip_rotate(pixels, boxes, rng)
        ys, xs = np.nonzero(turned[..., 0])
        np.testing.assert_array_equal(moved[0, :4], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_crops_have_the_input_size_and_boxes_inside(dataset):
    crops = CocoCrops(dataset[0], input_size=96, zoom_range=(0.5, 2.0), seed=0)
    for _ in range(5):
        pixels, target = crops.sample()
        assert pixels.shape == (96, 96, 3)
        boxes = target["boxes"].numpy()
        assert ((boxes >= 0) & (boxes <= 1)).all()


def test_learning_rate_schedule():
    config = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, config) == pytest.approx(0.1)
    assert lr_factor(10, config) == pytest.approx(1.0)
    assert lr_factor(100, config) == pytest.approx(0.1)


def _first_batches(dataset, workers: int, count: int = 4, start_step: int = 0) -> list[np.ndarray]:
    stream = CropBatches(
        dataset[0], batch_size=2, input_size=64, zoom_range=(0.5, 2.0), seed=0, start_step=start_step
    )
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers)
    batches = []
    for images, targets in loader:
        assert images.shape == (2, 64, 64, 3) and len(targets) == 2
        batches.append(images)
        if len(batches) == count:
            return batches


def test_crop_batches_repeat_with_workers_and_differ_between_workers_and_resumes(dataset):
    first, again = _first_batches(dataset, workers=2), _first_batches(dataset, workers=2)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])  # two workers, two streams
    resumed = _first_batches(dataset, workers=2, start_step=100)
    assert not np.array_equal(first[0], resumed[0])


def test_training_with_worker_processes(dataset, tmp_path):
    folder = train(_config(dataset, tmp_path / "run", steps=3, workers=1, val_data=None))
    assert (folder / "model.safetensors").is_file()


def _recategorised(folder, out, mapping: dict):
    """A copy of a generated dataset with its categories renamed and renumbered: `mapping` is
    old category id -> (new id, name); annotations of unmapped categories are dropped."""
    import shutil

    shutil.copytree(folder / "images", out / "images")
    coco = json.loads((folder / "annotations.json").read_text())
    coco["categories"] = [{"id": i, "name": n} for i, n in sorted(set(mapping.values()))]
    coco["annotations"] = [
        a | {"category_id": mapping[a["category_id"]][0]}
        for a in coco["annotations"]
        if a["category_id"] in mapping
    ]
    (out / "annotations.json").write_text(json.dumps(coco))
    return out


# vehicles become 'plane' (category id 1), everything else 'ship' (id 5): ids from 1, with a gap
OTHER_CLASSES = {0: (1, "plane"), 1: (5, "ship"), 2: (5, "ship"), 3: (5, "ship")}


def test_fine_tuning_the_demo_on_data_with_other_classes(dataset, tmp_path):
    """`train --init demo` on a user's COCO data with other classes: every demo weight but the
    class heads is kept, labels follow the sorted category ids, and the export loads with the
    new class names and is evaluated with the data's own category ids."""
    from sodviz.notices import DataNotice
    from sodviz.training.data import CocoCrops
    from sodviz.training.loop import evaluate_model

    train_folder = _recategorised(dataset[0], tmp_path / "train", OTHER_CLASSES)
    val_folder = _recategorised(dataset[1], tmp_path / "val", OTHER_CLASSES)
    crops = CocoCrops(train_folder, input_size=96, zoom_range=(1.0, 1.0), seed=0)
    labels = torch.cat([crops.sample()[1]["class_labels"] for _ in range(8)])
    assert set(labels.tolist()) <= {0, 1} and len(labels)

    config = _config(  # 160 px: the demo's 300 queries need 300 anchors (20² + 10² + 5²)
        (train_folder, val_folder), tmp_path / "ft", init="demo", steps=2, eval_every=2, input_size=160
    )
    with pytest.warns(DataNotice, match="the class heads start afresh"):
        model = initial_model(config, ["plane", "ship"])
    demo = load_detector("demo").model.state_dict()
    mine = model.state_dict()
    heads = [n for n in demo if any(h in n for h in CLASS_HEADS)]
    assert heads and all(mine[n].shape != demo[n].shape for n in heads if n.endswith("weight"))
    assert all(torch.equal(mine[n], demo[n]) for n in demo if n not in heads)
    renamed = ["car", "pedestrian", "bus", "van"]  # as many classes as the demo's: same shapes
    with pytest.warns(DataNotice, match="the class heads start afresh"):
        same_count = initial_model(config, renamed).state_dict()
    assert all(not torch.equal(same_count[n], demo[n]) for n in heads if n.endswith("weight"))
    assert all(torch.equal(same_count[n], demo[n]) for n in demo if n not in heads)

    with pytest.warns(DataNotice):
        detector = load_detector(train(config))
    assert detector.class_names == ("plane", "ship")
    metrics = evaluate_model(detector.model, val_folder, input_size=160)
    assert np.isfinite(metrics["AP"])
    # labels reach the data's categories by name: the demo with its first two classes renamed
    # scores on vehicles and people renumbered 1 / 5 exactly as on them with their own ids 0 / 1
    own = _recategorised(dataset[1], tmp_path / "own", {0: (0, "vehicle"), 1: (1, "person")})
    moved = _recategorised(dataset[1], tmp_path / "moved", {0: (1, "plane"), 1: (5, "ship")})
    demo = load_detector("demo").model
    on_own = evaluate_model(demo, own, input_size=256)
    demo.config.id2label = {0: "plane", 1: "ship", 2: "boat", 3: "truck"}
    on_moved = evaluate_model(demo, moved, input_size=256)
    assert on_own["AP50"] > 0.01 and on_moved == pytest.approx(on_own, nan_ok=True)
    with pytest.raises(FileNotFoundError, match="no model there"):
        initial_model(_config(dataset, tmp_path / "x", init=str(tmp_path / "nothing")), ["plane"])

"""Loading detectors: every family through save_pretrained folders, and every error made clear."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest
import torch
from transformers import DetrConfig, ResNetConfig, YolosConfig
from transformers.utils import is_timm_available

import sodviz.detector.loading
from conftest import WITHOUT_PROCESSOR, build_tiny_model, save_tiny_model
from sodviz.detector.families import FAMILIES
from sodviz.detector.loading import load_detector


def test_every_family_loads_frozen_with_eager_attention(detector):
    model = detector.model
    assert not model.training
    assert not any(parameter.requires_grad for parameter in model.parameters())
    assert model.config._attn_implementation == "eager"
    assert detector.family is FAMILIES[model.config.model_type]
    assert detector.class_names == ("vehicle", "person", "boat")
    assert len(detector.content_hash) == 64


def test_processor_comes_from_the_folder_or_the_family_default(tiny_detectors):
    for model_type, detector in tiny_detectors.items():
        family = FAMILIES[model_type]
        if model_type in WITHOUT_PROCESSOR:
            assert type(detector.processor).__name__ == family.processor_class
            assert detector.input_size == 800  # the family's default shortest edge
        else:
            assert detector.input_size == 96  # as saved in preprocessor_config.json


def test_content_hash_follows_the_weights(tiny_model_dirs, tiny_detectors, tmp_path):
    again = load_detector(tiny_model_dirs["rt_detr"])
    assert again.content_hash == tiny_detectors["rt_detr"].content_hash
    other = load_detector(save_tiny_model("rt_detr", tmp_path / "other", seed=1))
    assert other.content_hash != again.content_hash


def test_pickle_only_checkpoint_needs_the_opt_in(tmp_path):
    folder = tmp_path / "pickle"
    folder.mkdir()
    model = build_tiny_model("rt_detr")
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="allow_pickle=True"):
        load_detector(folder)
    detector = load_detector(folder, allow_pickle=True)
    torch.testing.assert_close(detector.model.state_dict(), model.state_dict())


@pytest.mark.timeout(60)  # offline must fail at once, not retry the hub for minutes
def test_uncached_hub_id_offline_fails_fast_with_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="local folder") as error:
        load_detector("PekingU/rtdetr_r18vd-not-cached")
    assert "offline" in str(error.value)
    print(f"offline hub error after {time.perf_counter() - start:.3f} s")


@pytest.mark.parametrize(
    "config",
    [
        ResNetConfig(num_labels=3),  # an image classifier
        YolosConfig(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        ),  # no decoder
    ],
)
def test_model_without_decoder_cross_attention_names_supported_families(tmp_path, config):
    config.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="Supported families: RT-DETR") as error:
        load_detector(tmp_path)
    assert config.model_type in str(error.value)


@pytest.mark.skipif(is_timm_available(), reason="timm is installed here, so a timm checkpoint loads")
def test_timm_checkpoint_without_timm_says_so(tmp_path):
    DetrConfig(use_timm_backbone=True, backbone="resnet50").save_pretrained(tmp_path)
    with pytest.raises(ImportError, match="timm backbone"):
        load_detector(tmp_path)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("./no/such/folder", "does not exist"),  # a path
        ("/definitely/missing", "does not exist"),  # an absolute path
        ("not a hub id", "does not exist"),  # neither a folder nor org/name
    ],
)
def test_missing_folder(source, message):
    with pytest.raises(FileNotFoundError, match=message):
        load_detector(source)


def test_folder_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        load_detector(tmp_path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"\x00garbage" * 64,  # not safetensors at all
        lambda data: data[: len(data) // 2],  # truncated
    ],
)
def test_corrupt_safetensors(tiny_model_dirs, tmp_path, damage):
    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dirs["rt_detr"], folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(ValueError, match="could not read the weights"):
        load_detector(folder)


@pytest.mark.parametrize("name", ["demo", "demo-fusion"])
def test_embedded_model_not_trained_yet(monkeypatch, tmp_path, name):
    monkeypatch.setitem(sodviz.detector.loading.EMBEDDED_MODELS, name, tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=f"embedded detector '{name}' is not trained yet"):
        load_detector(name)


def test_library_never_imports_streamlit():
    code = "import sys, sodviz, sodviz.cli, sodviz.views.render; print('streamlit' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False"

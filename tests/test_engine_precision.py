"""AudioLDM2Engine loaded as a GPU actor loads it (fp16 from_pretrained), run on the CPU tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds
from birdgen_ray.generate.engine import AudioLDM2Engine
from birdgen_ray.generate.model import load_pipeline
from birdgen_ray.generate.renderers import audioldm2 as renderer_module
from birdgen_ray.rows import PlanRow

pytestmark = pytest.mark.usefixtures("tiny_cache_and_one_thread")


def fp16_engine(monkeypatch, batch_size=2) -> AudioLDM2Engine:
    """fp16 weights through from_pretrained, exactly as load_pipeline gives them on CUDA."""
    monkeypatch.setattr(
        renderer_module, "load_pipeline", lambda model, device: load_pipeline(model, device, dtype=torch.float16)
    )
    generation = GenerationConfig(model="tiny", num_inference_steps=2, quality=QualityThresholds(max_retries=0))
    return AudioLDM2Engine(generation, EngineConfig(batch_size=batch_size, device="cpu"))


def weight_dtypes(pipe) -> dict[str, torch.dtype]:
    return {
        f"{component}.{name}": tensor.dtype
        for component, module in pipe.components.items()
        if isinstance(module, torch.nn.Module)
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]
    }


def nan_vocoder_on_calls(pipe, calls: set[int]) -> list[int]:
    counter = [0]

    def hook(_module, _inputs, output):
        call = counter[0]
        counter[0] += 1
        return torch.full_like(output, float("nan")) if call in calls else output

    pipe.vocoder.register_forward_hook(hook)
    return counter


def test_fp32_rerun_gives_every_weight_back_its_loaded_dtype(monkeypatch):
    """from_pretrained(dtype=fp16) keeps Flan-T5's `wo` layers in fp32 (transformers'
    _keep_in_fp32_modules: in fp16 they overflow). A NaN batch's fp32 rerun must not leave them fp16."""
    engine = fp16_engine(monkeypatch)
    loaded = weight_dtypes(engine.pipe)
    assert torch.float32 in loaded.values() and engine.pipe.dtype == torch.float16  # T5's wo, as on a GPU
    calls = nan_vocoder_on_calls(engine.pipe, {0, 1})  # the batch and its fp16 rerun: the fp32 rerun follows

    clips = engine.generate([PlanRow("a", "wren", "A song of a wren", "noise", 1, 1.0)])

    assert calls[0] == 3 and clips[0].attempts == 3 and np.isfinite(clips[0].audio).all()
    changed = {
        name: (dtype, loaded[name]) for name, dtype in weight_dtypes(engine.pipe).items() if dtype != loaded[name]
    }
    assert changed == {}


def test_out_of_memory_during_the_fp32_rerun_leaves_the_weights_as_loaded(monkeypatch):
    """The actor catches the error, halves the batch and calls generate again: on the loaded weights."""
    engine = fp16_engine(monkeypatch)
    loaded = weight_dtypes(engine.pipe)
    nan_vocoder_on_calls(engine.pipe, {0, 1})

    def fp32_does_not_fit(_module, args, kwargs):
        if (args[0] if args else kwargs["sample"]).dtype == torch.float32:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    engine.pipe.unet.register_forward_pre_hook(fp32_does_not_fit, with_kwargs=True)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        engine.generate([PlanRow("a", "wren", "A song of a wren", "noise", 1, 1.0)])

    assert weight_dtypes(engine.pipe) == loaded
    (clip,) = engine.generate([PlanRow("a", "wren", "A song of a wren", "noise", 1, 1.0)])  # NaN hook spent
    assert clip.attempts == 1 and np.isfinite(clip.audio).all()

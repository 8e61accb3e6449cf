"""A pipeline's weights: every tensor it holds, and running a block in another dtype without losing the loaded ones."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


def named_tensors(pipe) -> Iterator[tuple[str, torch.nn.Module, str, torch.Tensor, bool]]:
    """(qualified name, owning module, attribute, tensor, is_parameter) for every weight and buffer."""
    for component, module in pipe.components.items():
        if not isinstance(module, torch.nn.Module):
            continue
        for prefix, owner in module.named_modules():
            for is_parameter, tensors in ((True, owner._parameters), (False, owner._buffers)):
                for attribute, tensor in tensors.items():
                    if tensor is not None:
                        yield f"{component}.{prefix}.{attribute}", owner, attribute, tensor, is_parameter


@contextmanager
def weights_in(pipe, dtype: torch.dtype) -> Iterator[None]:
    """Run the block with the pipeline cast to `dtype`, then give every tensor back the dtype it had.

    Not `pipe.to(dtype=native)` afterwards: from_pretrained(dtype=fp16) keeps some weights in fp32
    (transformers' _keep_in_fp32_modules: Flan-T5's `wo`, which overflows in fp16), and a blanket
    cast back would leave them fp16 for the rest of the actor's life.
    """
    loaded = {name: tensor.dtype for name, _, _, tensor, _ in named_tensors(pipe)}
    try:
        pipe.to(dtype=dtype)
        yield
    finally:  # also after an out-of-memory error halfway through the cast
        for name, owner, attribute, tensor, is_parameter in list(named_tensors(pipe)):
            if tensor.dtype != loaded[name]:
                if is_parameter:
                    tensor.data = tensor.data.to(loaded[name])
                else:
                    owner._buffers[attribute] = tensor.to(loaded[name])

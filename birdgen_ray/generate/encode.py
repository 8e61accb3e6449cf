"""Prompt conditioning for AudioLDM2, in a few padded length buckets, so a clip never depends on its batch-mates.

diffusers' `encode_prompt` tokenizes a batch together: Flan-T5 inputs are padded to the longest
prompt and the projected sequence fed to GPT2 then has that padding in its middle, which shifts the
positions of the generated tokens. A clip's audio changes with the other prompts in its batch.

Here a shard's texts are encoded in few calls: grouped by length bucket (BUCKETS tokens, for CLAP
and Flan-T5 apart), right-padded inside the bucket with attention masks that hide the padding.
The projected sequence fed to GPT2 is re-laid per text as diffusers builds it for that text alone
([SOS, CLAP, EOS, SOS, T5, EOS], no padding inside) and left-padded to the group's longest, with an
attention mask and explicit position_ids, so each text keeps its own positions and gets what it
would get alone, to fp rounding (tests/test_engine.py bounds it). Three kinds of work diffusers throws away are
skipped: CLAP text padded to 512 tokens, GPT2 recomputing the whole sequence at each of its 8 steps
(a KV cache is used instead), and GPT2's vocabulary logits (only hidden states are needed).
Encodings are cached by text. A batch of clips then pads the Flan-T5 states to one fixed length
with zeros that the UNet's attention mask hides; the GPT2 states have a fixed length already.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

StageTimer = Callable[[str], AbstractContextManager]
BUCKETS = (32, 64, 128)  # token lengths a group is padded to; longer texts pad to the tokenizer's maximum


def bucket(length: int, maximum: int) -> int:
    """The padded length of a `length`-token text: the smallest bucket that holds it."""
    return next((b for b in BUCKETS if length <= b), max(maximum, length))


@dataclass(frozen=True)
class PromptEncoding:
    clap_text: torch.Tensor  # (1, clap_dim): unit-length CLAP text embedding (also the ranking reference)
    t5_embeds: torch.Tensor  # (1, tokens, t5_dim): Flan-T5 states, the UNet's second conditioning
    t5_mask: torch.Tensor  # (1, tokens), all ones: the text is encoded unpadded
    generated_embeds: torch.Tensor  # (1, max_new_tokens, gpt2_dim): GPT2 states, first conditioning

    def is_finite(self) -> bool:
        return all(bool(torch.isfinite(t).all()) for t in (self.clap_text, self.t5_embeds, self.generated_embeds))


def pooled_output(output) -> torch.Tensor:
    # transformers 5 returns a model output with pooler_output, transformers 4 a tensor
    return output.pooler_output if hasattr(output, "pooler_output") else output


class PromptEncoder:
    """Per-text encodings with an LRU cache; `batch` assembles pipeline inputs for many clips."""

    def __init__(self, pipe, stage: StageTimer, cache_size: int = 4096, group_size: int = 256, counts=None):
        self.pipe = pipe
        self.counts = counts  # renderer.EngineCounts: one encoder call per group encoded
        self.stage = stage
        self.cache_size = cache_size
        self.group_size = group_size
        self._cache: OrderedDict[str, PromptEncoding] = OrderedDict()
        self.max_new_tokens = int(getattr(pipe.language_model.config, "max_new_tokens", None) or 8)
        # Pad every batch to the tokenizer's maximum so batch shapes never change (no recompiles).
        self.padded_length = int(pipe.tokenizer_2.model_max_length)

    def clear(self) -> None:
        """Forget every cached encoding (after the pipeline changed dtype or weights)."""
        self._cache.clear()

    def encode(self, text: str) -> PromptEncoding:
        return self.encode_many([text])[0]

    def encode_many(self, texts: Sequence[str], cached: bool = True) -> list[PromptEncoding]:
        """Encodings of `texts` (in order); texts not in the cache are encoded in groups of equal token
        lengths. `cached=False` encodes every text afresh in the pipeline's current dtype and leaves
        the cache alone (the fp32 rerun of a batch that came out NaN in fp16)."""
        known = self._cache if cached else {}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        groups: dict[tuple[int, int], list[tuple[str, list[int], list[int]]]] = {}
        for text in missing:
            clap_ids = self.pipe.tokenizer(
                text, truncation=True, max_length=self.pipe.tokenizer.model_max_length
            ).input_ids
            t5_ids = self.pipe.tokenizer_2(text, truncation=True, max_length=self.padded_length).input_ids
            key = (bucket(len(clap_ids), self.pipe.tokenizer.model_max_length), bucket(len(t5_ids), self.padded_length))
            groups.setdefault(key, []).append((text, clap_ids, t5_ids))
        fresh: dict[str, PromptEncoding] = {}
        for members in groups.values():
            for start in range(0, len(members), self.group_size):
                fresh.update(self._encode_group(members[start : start + self.group_size]))
        if not cached:
            return [fresh[text] for text in texts]
        for text, encoding in fresh.items():
            if encoding.is_finite():  # a NaN/inf encoding (fp16 overflow) is never reused
                self._cache[text] = encoding
        encodings = []
        for text in texts:
            if text in self._cache:
                self._cache.move_to_end(text)
            encodings.append(self._cache.get(text) or fresh[text])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return encodings

    @torch.no_grad()
    def _encode_group(self, members: list[tuple[str, list[int], list[int]]]) -> dict[str, PromptEncoding]:
        """Encode texts of one length bucket in one call of each encoder (see the module docstring)."""
        pipe, device = self.pipe, self.pipe._execution_device
        clap_ids, clap_mask = _right_padded([m[1] for m in members], pipe.tokenizer.pad_token_id, device)
        t5_ids, t5_mask = _right_padded([m[2] for m in members], pipe.tokenizer_2.pad_token_id, device)
        t5_lengths = [len(m[2]) for m in members]
        if self.counts is not None:
            self.counts.encoder_calls += 1
        with self.stage("text_encoding"):
            clap_text = pooled_output(pipe.text_encoder.get_text_features(clap_ids, attention_mask=clap_mask))
            t5_embeds = pipe.text_encoder_2(t5_ids, attention_mask=t5_mask)[0]
            projected = pipe.projection_model(
                hidden_states=clap_text[:, None, :],
                hidden_states_1=t5_embeds,
                attention_mask=t5_mask.new_ones((len(members), 1)),
                attention_mask_1=t5_mask,
            )
            inputs_embeds, attention_mask = _left_aligned(projected.hidden_states, t5_lengths)
        with self.stage("gpt2"):
            generated = self._generate_hidden_states(inputs_embeds, attention_mask)
        # Copies, not views: a cached view would keep its whole group's tensors alive (on the GPU)
        # until every member of the group has been evicted.
        return {
            text: PromptEncoding(
                clap_text[i : i + 1].clone(),
                t5_embeds[i : i + 1, :length].clone(),
                t5_mask[i : i + 1, :length].clone(),
                generated[i : i + 1].clone(),
            )
            for i, ((text, _, _), length) in enumerate(zip(members, t5_lengths))
        }

    def _generate_hidden_states(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """AudioLDM2's GPT2 loop (diffusers' `generate_language_model`): feed each step's last hidden
        state back as the next input, `max_new_tokens` times. The GPT2 body runs with a KV cache and
        without the LM head: AudioLDM2 uses hidden states, never logits. Inputs are left-padded: each
        row's positions count from its first real token."""
        body = self.pipe.language_model.transformer
        cache_arg = _cache_argument(body)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        output = body(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=True
        )
        generated = [output.last_hidden_state[:, -1:, :]]
        for _ in range(self.max_new_tokens - 1):
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((attention_mask.shape[0], 1))], dim=1)
            position_ids = position_ids[:, -1:] + 1
            cache = {cache_arg: getattr(output, cache_arg)}  # the output names it the same way
            output = body(
                inputs_embeds=generated[-1],
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=True,
                **cache,
            )
            generated.append(output.last_hidden_state[:, -1:, :])
        return torch.cat(generated, dim=1)

    def _stack(self, encodings: Sequence[PromptEncoding]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        length = self.padded_length
        embeds, masks = [], []
        for enc in encodings:
            pad = length - enc.t5_embeds.shape[1]
            embeds.append(torch.nn.functional.pad(enc.t5_embeds, (0, 0, 0, pad)))  # zeros after the text
            masks.append(torch.nn.functional.pad(enc.t5_mask, (0, pad)))  # ... that attention never sees
        generated = torch.cat([enc.generated_embeds for enc in encodings])
        return torch.cat(embeds), torch.cat(masks), generated

    def batch(
        self, prompts: Sequence[str], negative_prompts: Sequence[str], cached: bool = True
    ) -> dict[str, torch.Tensor]:
        """Keyword arguments for AudioLDM2Pipeline.__call__ (in place of prompt/negative_prompt)."""
        encodings = self.encode_many([*prompts, *negative_prompts], cached=cached)
        embeds, mask, generated = self._stack(encodings[: len(prompts)])
        neg_embeds, neg_mask, neg_generated = self._stack(encodings[len(prompts) :])
        return {
            "prompt_embeds": embeds,
            "attention_mask": mask,
            "generated_prompt_embeds": generated,
            "negative_prompt_embeds": neg_embeds,
            "negative_attention_mask": neg_mask,
            "negative_generated_prompt_embeds": neg_generated,
        }


def _right_padded(ids: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), padded on the right to the group's bucket."""
    width = bucket(max(len(i) for i in ids), max(len(i) for i in ids))
    padded = torch.tensor([i + [pad_id] * (width - len(i)) for i in ids], device=device)
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids], device=device)
    return padded, mask


def _left_aligned(projected: torch.Tensor, t5_lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The projection model's [SOS, CLAP, EOS, SOS, T5 + padding, EOS] per row as diffusers builds it for
    the text alone, [SOS, CLAP, EOS, SOS, T5, EOS], left-padded to the longest row, and its mask."""
    last = projected.shape[1] - 1
    rows = [list(range(4 + length)) + [last] for length in t5_lengths]
    width = max(len(r) for r in rows)
    index = torch.tensor([[0] * (width - len(r)) + r for r in rows], device=projected.device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=projected.device)
    gathered = projected.gather(1, index[..., None].expand(-1, -1, projected.shape[2]))
    return gathered, mask


def _cache_argument(gpt2_body: torch.nn.Module) -> str:
    """The KV-cache keyword of GPT2Model.forward: `cache` from transformers 5.24, `past_key_values`
    before (5.17 on the GPU image). A wrong name is swallowed by **kwargs and every step after the
    first then sees only its own token: wrong conditioning, no error. So look, and refuse to guess."""
    parameters = inspect.signature(gpt2_body.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in parameters:
            return name
    raise RuntimeError(
        f"{type(gpt2_body).__name__}.forward takes neither `cache` nor `past_key_values`; "
        "this transformers version is not supported (see pyproject.toml)"
    )

"""Prompt conditioning for AudioLDM2, one prompt at a time, so a clip never depends on its batch-mates.

diffusers' `encode_prompt` tokenizes a batch together: Flan-T5 inputs are padded to the longest
prompt and the projected sequence fed to GPT2 then has that padding in its middle, which shifts the
positions of the generated tokens. A clip's audio changes with the other prompts in its batch.

Here every text (prompt or negative prompt) is encoded alone, exactly as `encode_prompt` does for a
single prompt, and cached by text. A batch is then assembled by padding the Flan-T5 states to one
fixed length with zeros that the UNet's attention mask hides. The GPT2 states have a fixed length
(`max_new_tokens`) already.
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

StageTimer = Callable[[str], AbstractContextManager]


@dataclass(frozen=True)
class PromptEncoding:
    t5_embeds: torch.Tensor  # (1, tokens, t5_dim): Flan-T5 states, the UNet's second conditioning
    t5_mask: torch.Tensor  # (1, tokens), all ones: the text is encoded unpadded
    generated_embeds: torch.Tensor  # (1, max_new_tokens, gpt2_dim): GPT2 states, first conditioning


def pooled_output(output) -> torch.Tensor:
    # transformers 5 returns a model output with pooler_output, transformers 4 a tensor
    return output.pooler_output if hasattr(output, "pooler_output") else output


class PromptEncoder:
    """Per-text encodings with an LRU cache; `batch` assembles pipeline inputs for many clips."""

    def __init__(self, pipe, stage: StageTimer, cache_size: int = 4096):
        self.pipe = pipe
        self.stage = stage
        self.cache_size = cache_size
        self._cache: OrderedDict[str, PromptEncoding] = OrderedDict()
        self.max_new_tokens = int(getattr(pipe.language_model.config, "max_new_tokens", None) or 8)
        # Pad every batch to the tokenizer's maximum so batch shapes never change (no recompiles).
        self.padded_length = int(pipe.tokenizer_2.model_max_length)

    @torch.no_grad()
    def encode(self, text: str) -> PromptEncoding:
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        pipe, device = self.pipe, self.pipe._execution_device
        with self.stage("text_encoding"):
            clap_inputs = pipe.tokenizer(
                text, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True,
                return_tensors="pt",
            ).to(device)
            clap_embeds = pooled_output(
                pipe.text_encoder.get_text_features(clap_inputs.input_ids, attention_mask=clap_inputs.attention_mask)
            )[:, None, :]
            t5_inputs = pipe.tokenizer_2(
                text, padding=True, max_length=pipe.tokenizer_2.model_max_length, truncation=True,
                return_tensors="pt",
            ).to(device)
            t5_embeds = pipe.text_encoder_2(t5_inputs.input_ids, attention_mask=t5_inputs.attention_mask)[0]
            projected = pipe.projection_model(
                hidden_states=clap_embeds,
                hidden_states_1=t5_embeds,
                attention_mask=clap_embeds.new_ones(clap_embeds.shape[:2], dtype=torch.long),
                attention_mask_1=t5_inputs.attention_mask,
            )
        with self.stage("gpt2"):
            generated = pipe.generate_language_model(
                projected.hidden_states, attention_mask=projected.attention_mask, max_new_tokens=self.max_new_tokens
            )
        encoding = PromptEncoding(t5_embeds, t5_inputs.attention_mask, generated)
        self._cache[text] = encoding
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return encoding

    def _stack(self, encodings: Sequence[PromptEncoding]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        length = self.padded_length
        embeds, masks = [], []
        for enc in encodings:
            pad = length - enc.t5_embeds.shape[1]
            embeds.append(torch.nn.functional.pad(enc.t5_embeds, (0, 0, 0, pad)))  # zeros after the text
            masks.append(torch.nn.functional.pad(enc.t5_mask, (0, pad)))  # ... that attention never sees
        generated = torch.cat([enc.generated_embeds for enc in encodings])
        return torch.cat(embeds), torch.cat(masks), generated

    def batch(self, prompts: Sequence[str], negative_prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Keyword arguments for AudioLDM2Pipeline.__call__ (in place of prompt/negative_prompt)."""
        embeds, mask, generated = self._stack([self.encode(p) for p in prompts])
        neg_embeds, neg_mask, neg_generated = self._stack([self.encode(n) for n in negative_prompts])
        return {
            "prompt_embeds": embeds,
            "attention_mask": mask,
            "generated_prompt_embeds": generated,
            "negative_prompt_embeds": neg_embeds,
            "negative_attention_mask": neg_mask,
            "negative_generated_prompt_embeds": neg_generated,
        }

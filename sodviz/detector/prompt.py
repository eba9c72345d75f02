"""The text prompt of an open-vocabulary detector (Grounding DINO): its phrases are the classes.

A prompt is written as Grounding DINO's own examples write it, phrases ended by dots:
"car. person. boat." Each phrase is one class; its score for a query is the best sigmoid over the
phrase's tokens (`post_process_grounded_object_detection` scores a query by the best token).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

import numpy as np
import torch

# Used when neither the user nor the checkpoint's labels name the classes: what aerial small-object
# benchmarks (VisDrone, DOTA) mostly ask for.
DEFAULT_PROMPT = "car. person. bicycle. truck. bus. boat."
_GENERIC_LABEL = re.compile(r"^(LABEL_\d+|class_\d+|\d+)$")


@dataclass(frozen=True, slots=True)
class TextPrompt:
    """A tokenised prompt.

    Attributes:
        text: the caption the model reads, "car. person. boat." (lower case, one dot per phrase).
        phrases: the classes, in prompt order.
        input_ids, attention_mask, token_type_ids: int64 `(tokens,)`, the tokenizer's output.
        token_phrase: int64 `(tokens,)`, the phrase index of each token, -1 for special tokens
            and dots.
        tokens: the token strings.
    """

    text: str
    phrases: tuple[str, ...]
    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    token_phrase: np.ndarray
    tokens: tuple[str, ...]

    def model_inputs(self, batch_size: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """`input_ids`, `attention_mask` and `token_type_ids`, repeated for a batch."""
        return {
            name: torch.as_tensor(getattr(self, name)).to(device)[None].repeat(batch_size, 1)
            for name in ("input_ids", "attention_mask", "token_type_ids")
        }

    def phrase_logits(self, token_logits: torch.Tensor) -> torch.Tensor:
        """`[B, Q, max_text_len]` token logits -> `[B, Q, phrases]`: each phrase's best token."""
        token_phrase = torch.as_tensor(self.token_phrase, device=token_logits.device)
        logits = token_logits[..., : len(token_phrase)]
        columns = [logits[..., token_phrase == p].amax(dim=-1) for p in range(len(self.phrases))]
        return torch.stack(columns, dim=-1)


def parse_phrases(prompt: str) -> tuple[str, ...]:
    """The phrases of a prompt: split at dots (commas too), stripped, lower case, repeats dropped.

    Raises:
        ValueError: no phrase in it.
    """
    phrases = []
    for part in re.split(r"[.,;\n]", str(prompt)):
        phrase = " ".join(part.split()).lower()
        if phrase and phrase not in phrases:
            phrases.append(phrase)
    if not phrases:
        raise ValueError(f"the prompt {prompt!r} names no class: write the classes as 'car. person. boat.'")
    return tuple(phrases)


def tokenize_prompt(tokenizer, prompt: str, *, max_tokens: int) -> TextPrompt:
    """Tokenise a prompt and find each phrase's tokens from the tokenizer's character offsets.

    Raises:
        ValueError: an empty prompt, one longer than the model reads, or a phrase with no token.
    """
    phrases = parse_phrases(prompt)
    text = " ".join(f"{phrase}." for phrase in phrases)
    spans, start = [], 0
    for phrase in phrases:
        spans.append((start, start + len(phrase)))
        start += len(phrase) + 2  # ". "
    encoded = tokenizer(text, return_offsets_mapping=True)
    ids = np.asarray(encoded["input_ids"], np.int64)
    if len(ids) > max_tokens:
        raise ValueError(
            f"the prompt is {len(ids)} tokens long and this model reads at most {max_tokens}: "
            "name fewer classes"
        )
    token_phrase = np.full(len(ids), -1, np.int64)
    for index, (begin, end) in enumerate(encoded["offset_mapping"]):
        if end <= begin:
            continue  # [CLS], [SEP]
        for phrase_index, (low, high) in enumerate(spans):
            if begin >= low and end <= high:
                token_phrase[index] = phrase_index
    missing = [phrase for i, phrase in enumerate(phrases) if not (token_phrase == i).any()]
    if missing:
        raise ValueError(f"the tokenizer gives no token for {missing}")
    mask = np.asarray(encoded.get("attention_mask", np.ones(len(ids))), np.int64)
    types = np.asarray(encoded.get("token_type_ids", np.zeros(len(ids))), np.int64)
    return TextPrompt(
        text=text,
        phrases=phrases,
        input_ids=ids,
        attention_mask=mask,
        token_type_ids=types,
        token_phrase=token_phrase,
        tokens=tuple(tokenizer.convert_ids_to_tokens(ids.tolist())),
    )


def with_prompt(detector, prompt: str):
    """The same open-vocabulary detector (same model, same lock) asking for the prompt's phrases:
    its `class_names` are the phrases and its `content_hash` covers the prompt, so every cache
    and stored run keeps prompts apart.

    Raises:
        ValueError: the detector is not open-vocabulary, or the prompt is not usable.
    """
    if not detector.family.open_vocabulary:
        raise ValueError(
            f"{detector.family.name} has a fixed set of classes; a text prompt is for open-vocabulary "
            "models (Grounding DINO, MM Grounding DINO)"
        )
    max_tokens = int(getattr(detector.model.config, "max_text_len", 256))
    text = tokenize_prompt(detector.tokenizer, prompt, max_tokens=max_tokens)
    weights = detector.weights_hash or detector.content_hash
    digest = hashlib.sha256(f"{weights}\nprompt: {text.text}".encode()).hexdigest()
    return replace(detector, prompt=text, class_names=text.phrases, content_hash=digest, weights_hash=weights)


def default_prompt(id2label: dict) -> str:
    """A checkpoint's own labels as a prompt when they are names, else `DEFAULT_PROMPT`."""
    names = [str(id2label[key]) for key in sorted(id2label, key=int)]
    if names and not any(_GENERIC_LABEL.match(name) for name in names):
        return ". ".join(names) + "."
    return DEFAULT_PROMPT


def prompt_for(detector, prompt: str | None):
    """`detector` asking for `prompt` (None: as loaded). A prompt for a closed-set model is refused."""
    return detector if prompt is None else with_prompt(detector, prompt)

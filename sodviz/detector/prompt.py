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

from sodviz.notices import name_some, notify

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


_IRREGULAR = {"people": "person", "men": "man", "women": "woman", "children": "child", "feet": "foot"}


def class_key(name: str) -> str:
    """A name as prompt phrases and category names are compared: lower case, `_` and `-` as
    spaces, no leading article, the last word singular ("Small_Cars" -> "small car")."""
    words = str(name).lower().replace("_", " ").replace("-", " ").split()
    if words and words[0] in ("a", "an", "the"):
        words = words[1:]
    if not words:
        return ""
    last = words[-1]
    if last in _IRREGULAR:
        last = _IRREGULAR[last]
    elif last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif last.endswith(("ses", "xes", "ches", "shes")):
        last = last[:-2]
    elif last.endswith("s") and not last.endswith("ss") and len(last) > 3:
        last = last[:-1]
    return " ".join([*words[:-1], last])


def map_phrases(phrases, category_names) -> tuple[tuple[str, ...], list[str], list[str]]:
    """Each prompt phrase as a dataset category name where `class_key` matches one.

    Returns:
        the class names (the category's name, or the phrase itself when none matches), the
        phrases no category matched, and the categories no phrase matched.
    """
    by_key = {}
    for name in category_names:
        by_key.setdefault(class_key(name), str(name))
    names = tuple(by_key.get(class_key(phrase), phrase) for phrase in phrases)
    unmapped = [phrase for phrase, name in zip(phrases, names, strict=True) if name not in by_key.values()]
    uncovered = [str(n) for n in category_names if str(n) not in names]
    return names, unmapped, uncovered


def with_prompt(detector, prompt: str, *, categories=None):
    """The same open-vocabulary detector (same model, same lock) asking for the prompt's phrases:
    its `class_names` are the phrases and its `content_hash` covers the prompt, so every cache
    and stored run keeps prompts apart. With `categories` (a dataset's category names), each
    phrase that names one ("cars" for "car") takes the category's name, and a `DataNotice`
    says which phrases and categories found no partner.

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
    names = text.phrases
    if categories is not None:
        names, unmapped, uncovered = map_phrases(text.phrases, list(categories))
        notices = []
        if unmapped:
            notices.append(f"the prompt's phrases {name_some(unmapped)} name no category of the data")
        if uncovered:
            notices.append(f"no prompt phrase names the categories {name_some(uncovered)}")
        notify(notices)
        if len(set(names)) < len(names):
            raise ValueError(
                f"two phrases of the prompt name one category: {dict(zip(text.phrases, names, strict=True))}"
            )
    digest = hashlib.sha256(f"{weights}\nprompt: {text.text}\nnames: {names}".encode()).hexdigest()
    return replace(detector, prompt=text, class_names=names, content_hash=digest, weights_hash=weights)


def default_prompt(id2label: dict) -> str:
    """A checkpoint's own labels as a prompt when they are names, else `DEFAULT_PROMPT`."""
    names = [str(id2label[key]) for key in sorted(id2label, key=int)]
    if names and not any(_GENERIC_LABEL.match(name) for name in names):
        return ". ".join(names) + "."
    return DEFAULT_PROMPT


def prompt_for_data(detector, prompt: str | None, category_names):
    """An open-vocabulary detector asking for `prompt`, or, without one, for the dataset's own
    categories, its phrases named as the categories; any other detector as it is (a prompt for
    a closed-set model is refused)."""
    if not detector.family.open_vocabulary:
        return detector if prompt is None else with_prompt(detector, prompt)
    names = [str(n) for n in category_names]
    return with_prompt(detector, prompt if prompt is not None else ". ".join(names) + ".", categories=names)

"""Build small models from nothing, with no network: tokenizers (bytes, or a BPE trained on a corpus,
such as the tasks' expert text) with a chat template, Llama-style causal LMs and LLaVA-style VLMs at preset sizes, saved as
Hugging Face checkpoints that reload through the Auto classes exactly like a downloaded model."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<image>")
# Each turn is "ROLE: CONTENT</s>"; image parts become the <image> token, which a LLaVA-style processor
# expands to one token per image patch. The generation markers cover the assistant's content and its
# </s>, so assistant-only losses train the model to stop, and the generation prompt ends exactly where
# an assistant turn's content starts.
CHAT_TEMPLATE = (
    "{% macro render(content) %}"
    "{% if content is string %}{{ content }}"
    "{% elif content is not none %}{% for p in content %}"
    "{% if p['type'] == 'image' %}<image>{% elif p['text'] is not none %}{{ p['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% endmacro %}"
    "{{ bos_token }}"
    "{% for m in messages %}{{ m['role'] ~ ': ' }}"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ render(m['content']) ~ eos_token }}{% endgeneration %}"
    "{% else %}{{ render(m['content']) ~ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)
# Role headers are cut out before byte-level splitting, so BPE never merges "assistant: "'s space into
# the content's first token: a prompt ending in the generation prompt then tokenizes exactly like the
# same prefix of a training conversation.
_ROLE_HEADER = r"(?:system|user|assistant|tool): "
SIZES = {
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2},
    "mini": {"hidden_size": 192, "intermediate_size": 512, "num_hidden_layers": 6, "num_attention_heads": 6,
             "num_key_value_heads": 3},
    "small": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 6, "num_attention_heads": 8,
              "num_key_value_heads": 4},
}
VISION_SIZES = {
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "image_size": 32, "patch_size": 16},
    "mini": {"hidden_size": 96, "intermediate_size": 384, "num_hidden_layers": 3, "num_attention_heads": 4,
             "image_size": 64, "patch_size": 16},
    "small": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4,
              "image_size": 112, "patch_size": 16},
}
VOCAB_SIZES = {"tiny": 1024, "mini": 4096, "small": 4096}
MAX_POSITIONS = 4096
KINDS = ("lm", "vlm")


def _check_size(size: str) -> None:
    if size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}, not {size!r}")


def _byte_level_backend(model):
    backend = Tokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_ROLE_HEADER), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    backend.decoder = decoders.ByteLevel()
    return backend


def _wrap(backend):
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        additional_special_tokens=["<image>"], clean_up_tokenization_spaces=False,
        model_max_length=MAX_POSITIONS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def byte_tokenizer():
    """A byte-level tokenizer without merges: every string is encodable and nothing is trained."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *sorted(alphabet)])}
    return _wrap(_byte_level_backend(models.BPE(vocab=vocab, merges=[])))


def build_tokenizer(corpus: list[str] | None = None, vocab_size: int = 2048):
    """`byte_tokenizer()` without a corpus; else a byte-level BPE trained on it. The whole byte alphabet
    is in the vocabulary, so text the corpus never showed still encodes (as bytes) and decodes back."""
    if corpus is None:
        return byte_tokenizer()
    backend = _byte_level_backend(models.BPE())
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer)
    return _wrap(backend)


def llama_config(tokenizer, size: str = "tiny"):
    _check_size(size)
    return transformers.LlamaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=MAX_POSITIONS, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **SIZES[size],
    )


def _init(model_class, config, seed: int):
    """A model initialised from `seed` alone, leaving the caller's global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(config)


def _generation_config(tokenizer):
    return transformers.GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def init_causal_lm(tokenizer: Any, size: str = "tiny", seed: int = 0):
    """A Llama-style LM for `tokenizer`, randomly initialised from `seed`, in memory."""
    model = _init(transformers.LlamaForCausalLM, llama_config(tokenizer, size), seed)
    model.generation_config = _generation_config(tokenizer)
    return model


def build_causal_lm(path: str | Path, size: str = "tiny", seed: int = 0, tokenizer: Any = None) -> Path:
    """`init_causal_lm` and its tokenizer (bytes by default), saved at `path`."""
    tokenizer = byte_tokenizer() if tokenizer is None else tokenizer
    model = init_causal_lm(tokenizer, size, seed)
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def square_image_processor(size: str = "tiny"):
    """Images squashed to the tower's square input, not centre-cropped: a crop would cut off the
    outer cards of a table or the edges of the street-view grid."""
    _check_size(size)
    side = VISION_SIZES[size]["image_size"]
    square = {"height": side, "width": side}
    return transformers.CLIPImageProcessor(size=square, crop_size=square, do_center_crop=False)


def init_vlm(tokenizer: Any, size: str = "tiny", seed: int = 0):
    """A LLaVA-style VLM (CLIP vision tower, MLP projector, the Llama LM of `init_causal_lm`) randomly
    initialised from `seed`, and its processor, in memory."""
    _check_size(size)
    vision = VISION_SIZES[size]
    config = transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(**vision),
        text_config=llama_config(tokenizer, size),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(vision["image_size"] // vision["patch_size"]) ** 2,
        # The last layer, not LLaVA's penultimate: trained from scratch, there is no contrastive head
        # to step around, and every tower layer then gets gradients.
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    model = _init(transformers.LlavaForConditionalGeneration, config, seed)
    model.generation_config = _generation_config(tokenizer)
    processor = transformers.LlavaProcessor(
        image_processor=square_image_processor(size),
        tokenizer=tokenizer,
        patch_size=vision["patch_size"],
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # the CLS token, which the "default" strategy then drops
        chat_template=CHAT_TEMPLATE,
        image_token="<image>",
    )
    return model, processor


def build_vlm(path: str | Path, size: str = "tiny", seed: int = 0, tokenizer: Any = None) -> Path:
    """`init_vlm` with its processor (and so its tokenizer, bytes by default), saved at `path`."""
    model, processor = init_vlm(byte_tokenizer() if tokenizer is None else tokenizer, size, seed)
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_model(path: str | Path, kind: str = "lm", size: str = "tiny", seed: int = 0,
                corpus: Iterable[str] | None = None) -> Path:
    """A `kind` ("lm" or "vlm") model of preset `size` at `path`, with a BPE tokenizer trained on
    `corpus` (sized by VOCAB_SIZES), or the byte-level one without a corpus."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    _check_size(size)
    if Path(path).exists() and not Path(path).is_dir():
        raise ValueError(f"{str(path)!r} exists and is not a directory")
    if (Path(path) / "config.json").exists():  # another model's files (a processor, weights) would stay behind
        raise ValueError(f"{str(path)!r} already holds a model; build into a new directory")
    if type(seed) is not int or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an int from 0 to {2**32 - 1}, not {seed!r}")
    tok = byte_tokenizer() if corpus is None else build_tokenizer(list(corpus), VOCAB_SIZES[size])
    build = build_causal_lm if kind == "lm" else build_vlm
    return build(path, size=size, seed=seed, tokenizer=tok)

"""Build small models from nothing, with no network: a byte-level tokenizer with a chat template, and
Llama-style causal LMs at preset sizes, saved as Hugging Face checkpoints that reload through the
Auto classes exactly like a downloaded model."""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<image>")
# Role headers and turn ends written by the template; image parts become the <image> token, which a
# LLaVA-style processor expands to one token per image patch.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ eos_token }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)
SIZES = {
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2},
    "small": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 6, "num_attention_heads": 8,
              "num_key_value_heads": 4},
}


def byte_tokenizer():
    """A byte-level tokenizer without merges: every string is encodable and nothing is downloaded."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *sorted(alphabet)])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        additional_special_tokens=["<image>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def llama_config(tokenizer, size: str = "tiny"):
    import transformers

    if size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}, not {size!r}")
    return transformers.LlamaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **SIZES[size],
    )


def build_causal_lm(path: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """A randomly initialised Llama-style LM and its tokenizer, saved at `path`."""
    import torch
    import transformers

    tokenizer = byte_tokenizer()
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(llama_config(tokenizer, size))
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path

"""Models built offline: tokenizers and small networks saved as standard Hugging Face checkpoints."""

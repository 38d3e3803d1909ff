"""The Textual app. Nothing here imports torch, transformers or peft at module level."""

"""lora-chat: fine-tune flan-t5-small with LoRA and chat with the result."""

__version__ = "0.1.0"

"""Entry point for ``python -m lora_chat``."""

import sys

from lora_chat.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""Start-up stays cheap: the core, the CLI and the app import no heavy library."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "peft", "datasets", "accelerate")


@pytest.mark.parametrize("module", ["lora_chat.core", "lora_chat.core.dataset", "lora_chat.core.library", "lora_chat.core.settings", "lora_chat.core.inference", "lora_chat.core.training", "lora_chat.cli"])
def test_import_is_light(module):
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_core_never_imports_textual():
    code = "import sys, lora_chat.core.training, lora_chat.core.inference, lora_chat.core.library; print('textual' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"

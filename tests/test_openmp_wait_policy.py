"""lora-chat asks OpenMP threads to sleep while they wait, unless the user chose otherwise."""

import os
import subprocess
import sys

CODE = "import os, lora_chat; print(os.environ['OMP_WAIT_POLICY'])"


def run_with(env_value):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_wait_policy_defaults_to_passive():
    assert run_with(None) == "PASSIVE"


def test_wait_policy_keeps_user_value():
    assert run_with("ACTIVE") == "ACTIVE"

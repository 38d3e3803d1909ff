"""lora-chat: fine-tune flan-t5-small with LoRA and chat with the result."""

import os

__version__ = "0.1.0"

# torch's CPU thread pool (GNU OpenMP in the PyPI wheels) spins while its threads wait for
# each other. When other programs share the cores, the spinning threads take turns away from
# the working ones: one training step of the flan-t5-small stand-in (batch of 8 short rows,
# 2 threads) took 4-20 s instead of 1.1-2 s on a 2-core machine with a load average near 7.
# Sleeping waiters avoid that. It has effect only when set before torch loads, and a value
# the user set is kept.
# NOTE: on an idle machine, sleeping waiters may cost a little per operation; not measured yet.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

"""Train with lora-chat's own trainer, as ``lora-chat train`` does, and print the timings.

Run by ``benchmarks/run.py`` as ``python benchmarks/probes/train.py SPEC.json``. SPEC.json
names the model, the device, the training settings and a list of runs, each a rows file and
an adapter name. The runs go one after another in this process. The heavy libraries are
imported before the first run, so every run is timed the same way. The last line of stdout is
``RESULT {"runs": [...]}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(spec_path: str) -> int:
    spec = json.loads(open(spec_path, encoding="utf-8").read())

    import accelerate  # noqa: F401  imported up front so that no run pays for the imports
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from lora_chat.core.library import AdapterLibrary
    from lora_chat.core.settings import TrainSettings
    from lora_chat.core.training import train

    settings = TrainSettings(**spec["settings"])
    library = AdapterLibrary()
    results = []
    for run in spec["runs"]:
        rows = sum(1 for line in open(run["rows"], encoding="utf-8") if line.strip())
        events = Path(spec["events_dir"]) / f"{run['name']}.jsonl"
        started = time.perf_counter()
        result = train(run["rows"], run["name"], settings, spec["model"], event_log=events, library=library, device=spec["device"])
        call_s = time.perf_counter() - started
        results.append(
            {
                "rows": rows,
                "train_s": result.duration_s,
                "call_s": call_s,
                "samples_per_second": rows * settings.epochs / result.duration_s,
                "final_loss": result.final_loss,
            }
        )
    print("RESULT " + json.dumps({"runs": results}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

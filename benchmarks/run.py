#!/usr/bin/env python3
"""Benchmark lora-chat against the alternatives, in one run on one machine.

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--out FILE] [--model DIR]

Without ``--model`` it builds the flan-t5-small-shaped stand-in (random weights, the real
model's architecture and cost) into ``.standin/flan-t5-small`` once, and never touches the
model hub. Every measurement runs in its own subprocess, so runs do not share memory and
peak RSS is each run's own. Figures are medians over repeats, printed with their min-max
spread. The table goes to stdout and the figures to a JSON file (``benchmarks/results.json``
by default). ``benchmarks/README.md`` explains each figure.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import json
import math
import os
import platform
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
SAMPLE_DATA = ROOT / "sample_data"
DEFAULT_MODEL_DIR = ROOT / ".standin" / "flan-t5-small"
RESULT_PREFIX = "RESULT "
EXIT_AFTER_FIRST_SCREEN_ENV = "LORA_CHAT_EXIT_AFTER_FIRST_SCREEN"
SCALING_SIZES = (50, 500, 2000)
CHAT_PROMPT = "What is the capital of France? Answer in one short sentence."

# Target per key: (comparison, bound). Checked and printed, never enforced by exit code.
TARGETS: dict[str, tuple[str, float]] = {
    "train_speedup_vs_seed_recipe": (">=", 2.0),
    "train_ratio_vs_bare_loop": (">=", 0.9),
    "train_peak_rss_ratio_vs_bare_loop": ("<=", 1.2),
    "adapter_switch_vs_reload": ("<=", 1 / 50),
    "generate_ratio_vs_plain": (">=", 0.95),
    "startup_ratio_vs_minimal_textual": ("<=", 1.5),
    "train_scaling_exponent": ("<=", 1.1),
}


@dataclass
class Plan:
    """How much work each part of the benchmark does."""

    train_rows: int
    train_epochs: int
    train_repeats: int
    scaling_sizes: tuple[int, ...]
    scaling_epochs: int
    scaling_repeats: int
    chat_repeats: int
    max_new_tokens: int
    startup_repeats: int


PLANS = {
    "full": Plan(64, 3, 5, SCALING_SIZES, 2, 3, 7, 48, 31),
    "quick": Plan(32, 1, 3, SCALING_SIZES, 1, 1, 5, 32, 15),
    # For the end-to-end test on the tiny stand-in: every step runs, with the least work.
    "tiny-test": Plan(16, 1, 1, (20, 40, 80), 1, 1, 1, 8, 1),
}


# Rows ---------------------------------------------------------------------------------


def sample_rows() -> list[dict[str, str]]:
    """Return every row of the sample datasets, in a fixed order."""
    rows: list[dict[str, str]] = []
    for path in sorted(SAMPLE_DATA.iterdir()):
        if path.suffix == ".jsonl":
            rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        elif path.suffix == ".json":
            rows += json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as fh:
                rows += list(csv.DictReader(fh))
    # Some inputs appear in two sample files; keep the first, so that numbered copies stay distinct.
    unique: dict[str, dict[str, str]] = {}
    for row in rows:
        unique.setdefault(row["input"], {"input": row["input"], "output": row["output"]})
    return list(unique.values())


def make_rows(count: int) -> list[dict[str, str]]:
    """Return ``count`` distinct rows: the sample rows again and again, each copy numbered.

    Every row carries a number of the same width, so rows are as long at every count and
    the scaling runs differ only in how many rows they train on.
    """
    base = sample_rows()
    rows = []
    for i in range(count):
        row = base[i % len(base)]
        rows.append({"input": f"{row['input']} (set {i // len(base):03d})", "output": row["output"]})
    return rows


def write_rows(folder: Path, count: int) -> Path:
    path = folder / f"rows-{count}.jsonl"
    if not path.exists():
        path.write_text("".join(json.dumps(r) + "\n" for r in make_rows(count)), encoding="utf-8")
    return path


# Subprocesses --------------------------------------------------------------------------


@dataclass
class ChildRun:
    result: dict[str, Any]
    wall_s: float
    peak_rss_mb: float


def run_child(argv: list[str], env: dict[str, str], log_path: Path) -> ChildRun:
    """Run a Python child, parse its ``RESULT`` line and measure its own peak RSS.

    ``os.wait4`` returns the resource usage of that one child, so runs never share a peak.
    Everything else the child prints (Trainer log dicts, warnings) goes to ``log_path``.
    """
    started = time.perf_counter()
    with log_path.open("ab") as log:
        log.write(f"\n$ {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=log, env=env, cwd=ROOT)
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.write(stdout)
    wall_s = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed with exit code {proc.returncode}; see {log_path}")
    lines = [line for line in stdout.decode(errors="replace").splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise RuntimeError(f"{' '.join(argv)} printed no {RESULT_PREFIX.strip()} line; see {log_path}")
    # ru_maxrss is in kilobytes on Linux.
    return ChildRun(json.loads(lines[-1][len(RESULT_PREFIX):]), wall_s, usage.ru_maxrss / 1024)


def time_first_screen(argv: list[str], env: dict[str, str], marker: bytes, timeout: float = 120) -> float:
    """Return seconds from starting ``argv`` under a pseudo-terminal to its first drawn screen.

    The screen counts as drawn when ``marker`` first appears in the child's output. The
    child is expected to exit right after that, and an app that exits without drawing
    ``marker`` fails loudly.
    """
    import fcntl
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, start_new_session=True)
    os.close(slave)
    drawn = bytearray()
    drawn_at: float | None = None
    deadline = started + timeout
    while time.perf_counter() < deadline:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
            if drawn_at is None and marker in drawn:
                drawn_at = time.perf_counter() - started
        elif proc.poll() is not None:
            break
    else:
        proc.kill()
        raise RuntimeError(f"{' '.join(argv)} did not exit within {timeout:.0f} s of drawing its first screen")
    proc.wait()
    os.close(master)
    if proc.returncode != 0 or drawn_at is None:
        tail = bytes(drawn[-2000:]).decode(errors="replace")
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode} without drawing {marker!r}; output ended: {tail}")
    return drawn_at


# Statistics ------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], digits: int = 3) -> str:
    """Return the min-max range of ``values`` and their count as text, or "1 run"."""
    if len(values) < 2:
        return "1 run"
    return f"{min(values):.{digits}g}-{max(values):.{digits}g}, n={len(values)}"


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(ys) over log(xs)."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


# The benchmark ---------------------------------------------------------------------------


class Benchmark:
    def __init__(self, model: Path, device: str, plan: Plan, work: Path) -> None:
        self.model = model
        self.device = device
        self.plan = plan
        self.work = work
        self.log = work / "children.log"
        self.home = work / "home"
        self.env = dict(os.environ)
        self.env.update(
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            TOKENIZERS_PARALLELISM="false",
            LORA_CHAT_HOME=str(self.home),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        # lora-chat sets this for itself on import; the baselines get it too, so the ratios
        # compare the trainers and not the OpenMP wait policy.
        self.env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.env.pop("LORA_CHAT_BASE_MODEL", None)
        self.env.pop(EXIT_AFTER_FIRST_SCREEN_ENV, None)
        self.samples: dict[str, list[float]] = {}
        self.adapters: list[str] = []

    def add(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)

    def spec(self, name: str, **fields: Any) -> Path:
        path = self.work / f"{name}.json"
        path.write_text(json.dumps({"model": str(self.model), "device": self.device, **fields}), encoding="utf-8")
        return path

    def settings(self, epochs: int) -> dict[str, Any]:
        # lora-chat's defaults, except one set of rows for every trainer: no eval split.
        return {
            "rank": 8,
            "alpha": 32.0,
            "dropout": 0.05,
            "target_modules": ["q", "v"],
            "learning_rate": 1e-3,
            "epochs": epochs,
            "batch_size": 8,
            "seed": 42,
            "eval_fraction": 0.0,
        }

    def say(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    # Training against the seed's recipe and a bare loop.

    def train_comparison(self) -> None:
        plan = self.plan
        rows = write_rows(self.work, plan.train_rows)
        settings = self.settings(plan.train_epochs)
        trainers = ["lora_chat", "seed_recipe", "bare_loop"]
        for repeat in range(plan.train_repeats):
            # Rotate the order so that no trainer always runs first on a warming machine.
            order = trainers[repeat % 3 :] + trainers[: repeat % 3]
            for trainer in order:
                self.say(f"training, {trainer}, repeat {repeat + 1} of {plan.train_repeats}")
                if trainer == "lora_chat":
                    name = f"bench-{repeat + 1}"
                    spec = self.spec(
                        f"train-{name}", settings=settings, runs=[{"rows": str(rows), "name": name}], events_dir=str(self.work)
                    )
                    child = run_child(["benchmarks/probes/train.py", str(spec)], self.env, self.log)
                    figures = child.result["runs"][0]
                    self.adapters.append(name)
                else:
                    spec = self.spec(f"train-{trainer}", settings=settings, rows=str(rows))
                    child = run_child([f"benchmarks/baselines/{trainer}.py", str(spec)], self.env, self.log)
                    figures = child.result
                self.add(f"{trainer}_samples_per_second", figures["samples_per_second"])
                self.add(f"{trainer}_peak_rss_mb", child.peak_rss_mb)

    def scaling(self) -> None:
        plan = self.plan
        settings = self.settings(plan.scaling_epochs)
        runs = []
        for repeat in range(plan.scaling_repeats):
            for size in plan.scaling_sizes:
                runs.append({"rows": str(write_rows(self.work, size)), "name": f"scaling-{size}-{repeat + 1}"})
        self.say(f"training on {', '.join(map(str, plan.scaling_sizes))} rows, {plan.scaling_repeats} repeat(s)")
        child = run_child(["benchmarks/probes/train.py", str(self.spec("scaling", settings=settings, runs=runs, events_dir=str(self.work)))], self.env, self.log)
        for figures in child.result["runs"]:
            self.add(f"scaling_call_s_{figures['rows']}", figures["call_s"])
            self.add(f"scaling_train_s_{figures['rows']}", figures["train_s"])

    def chat(self) -> None:
        plan = self.plan
        adapters = (self.adapters * 2)[:2]
        if len(set(adapters)) < 2:
            raise RuntimeError("the adapter switch needs two adapters from the training runs; use at least 2 training repeats or the scaling runs")
        self.say("chat: streaming, plain generate, adapter switch and reload")
        spec = self.spec("chat", adapters=adapters, prompt=CHAT_PROMPT, max_new_tokens=plan.max_new_tokens, repeats=plan.chat_repeats)
        child = run_child(["benchmarks/probes/chat.py", str(spec)], self.env, self.log)
        for key, values in child.result.items():
            if key != "tokens":
                self.samples[key] = values
        self.samples["generated_tokens"] = [float(t) for t in child.result["tokens"]]

    def startup(self) -> None:
        # pip compiles an installed package's modules to bytecode, as it did Textual's; an
        # editable install leaves that to Python's first import, which PYTHONDONTWRITEBYTECODE
        # can forbid. Compile lora-chat's too, so both programs start from bytecode.
        compileall.compile_dir(ROOT / "lora_chat", quiet=1)
        app_env = dict(self.env, TERM="xterm-256color", **{EXIT_AFTER_FIRST_SCREEN_ENV: "1"})
        app = [sys.executable, "-m", "lora_chat", "--base-model", str(self.model)]
        minimal = [sys.executable, str(BENCH / "baselines" / "minimal_textual.py")]
        # One untimed start each, so both are timed with warm file caches.
        time_first_screen(app, app_env, b"lora-chat")
        time_first_screen(minimal, app_env, b"minimal textual app")
        for repeat in range(self.plan.startup_repeats):
            self.say(f"start-up, repeat {repeat + 1} of {self.plan.startup_repeats}")
            app_s = time_first_screen(app, app_env, b"lora-chat")
            minimal_s = time_first_screen(minimal, app_env, b"minimal textual app")
            self.add("startup_app_s", app_s)
            self.add("startup_minimal_s", minimal_s)
            # The two starts of a pair run back to back, so a slow spell of a shared
            # machine slows both. The ratio is the median over these pairs.
            self.add("startup_pair_ratio", app_s / minimal_s)

    def run(self) -> dict[str, Any]:
        self.startup()
        self.train_comparison()
        if len(self.adapters) < 2:
            # One training repeat leaves one adapter; the scaling runs add more.
            self.scaling()
            self.adapters += [f"scaling-{self.plan.scaling_sizes[0]}-1"]
            self.chat()
        else:
            self.chat()
            self.scaling()
        return self.summarise()

    def summarise(self) -> dict[str, Any]:
        m = {key: median(values) for key, values in self.samples.items()}
        sizes = self.plan.scaling_sizes
        results: dict[str, Any] = {
            "train_speedup_vs_seed_recipe": m["lora_chat_samples_per_second"] / m["seed_recipe_samples_per_second"],
            "train_ratio_vs_bare_loop": m["lora_chat_samples_per_second"] / m["bare_loop_samples_per_second"],
            "train_peak_rss_ratio_vs_bare_loop": m["lora_chat_peak_rss_mb"] / m["bare_loop_peak_rss_mb"],
            "adapter_switch_s": m["adapter_switch_s"],
            "base_reload_s": m["base_reload_s"],
            "first_attach_s": m["first_attach_s"],
            "generate_ratio_vs_plain": m["stream_tokens_per_second"] / m["plain_tokens_per_second"],
            "first_token_s": m["first_token_s"],
            "startup_ratio_vs_minimal_textual": m["startup_pair_ratio"],
            "train_scaling_exponent": slope(list(sizes), [m[f"scaling_call_s_{n}"] for n in sizes]),
            "train_scaling_exponent_loop_only": slope(list(sizes), [m[f"scaling_train_s_{n}"] for n in sizes]),
        }
        results["adapter_switch_vs_reload"] = results["adapter_switch_s"] / results["base_reload_s"]
        results["samples"] = self.samples
        results["medians"] = m
        return results


# Output ----------------------------------------------------------------------------------


def target_text(key: str, value: float) -> tuple[str, str]:
    if key not in TARGETS:
        return "reported", ""
    op, bound = TARGETS[key]
    holds = value >= bound if op == ">=" else value <= bound
    bound_text = "reload / 50" if key == "adapter_switch_vs_reload" else f"{bound:g}"
    return f"{op} {bound_text}", "yes" if holds else "NO"


def table(results: dict[str, Any]) -> str:
    s, m = results["samples"], results["medians"]

    def fig(key: str, unit: str, digits: int = 3) -> str:
        return f"{m[key]:.{digits}g} {unit} ({spread(s[key], digits)})"

    sizes = sorted(int(k.rsplit("_", 1)[1]) for k in m if k.startswith("scaling_call_s_"))
    rows = [
        ("train_speedup_vs_seed_recipe", fig("lora_chat_samples_per_second", "samples/s"), fig("seed_recipe_samples_per_second", "samples/s")),
        ("train_ratio_vs_bare_loop", fig("lora_chat_samples_per_second", "samples/s"), fig("bare_loop_samples_per_second", "samples/s")),
        ("train_peak_rss_ratio_vs_bare_loop", fig("lora_chat_peak_rss_mb", "MB", 4), fig("bare_loop_peak_rss_mb", "MB", 4)),
        ("adapter_switch_vs_reload", "switch " + fig("adapter_switch_s", "s"), "reload " + fig("base_reload_s", "s")),
        ("generate_ratio_vs_plain", fig("stream_tokens_per_second", "tokens/s"), fig("plain_tokens_per_second", "tokens/s")),
        ("first_token_s", fig("first_token_s", "s"), f"first attach {fig('first_attach_s', 's')}"),
        ("startup_ratio_vs_minimal_textual", fig("startup_app_s", "s"), fig("startup_minimal_s", "s")),
        (
            "train_scaling_exponent",
            "; ".join(f"{n} rows {m[f'scaling_call_s_{n}']:.3g} s" for n in sizes),
            f"loop only: exponent {results['train_scaling_exponent_loop_only']:.2f}",
        ),
    ]
    lines = ["| key | value | lora-chat | compared with | target | holds |", "|---|---|---|---|---|---|"]
    for key, ours, theirs in rows:
        value = results[key]
        target, holds = target_text(key, value)
        lines.append(f"| `{key}` | {value:.3g} | {ours} | {theirs} | {target} | {holds} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def ensure_standin(folder: Path) -> Path:
    """Build the flan-t5-small-shaped stand-in into ``folder`` unless it is there already."""
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        return folder
    print(f"building the flan-t5-small-shaped stand-in in {folder} (once)", file=sys.stderr, flush=True)
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_standin_model.py"), str(folder), "--shape", "flan-t5-small"],
        check=True,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark lora-chat against the alternatives on this machine.")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and 1 epoch: about 8 minutes on a 2-core CPU")
    parser.add_argument("--tiny-test", action="store_true", help="the smallest run that still runs every step, for the test suite's tiny model")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device for training and chat (default: cpu)")
    parser.add_argument("--out", type=Path, default=BENCH / "results.json", help="JSON file to write (default: benchmarks/results.json)")
    parser.add_argument("--model", type=Path, help=f"base model folder (default: the flan-t5-small-shaped stand-in in {DEFAULT_MODEL_DIR.relative_to(ROOT)})")
    args = parser.parse_args(argv)

    mode = "full"
    if args.quick:
        mode = "quick"
    if args.tiny_test:
        mode = "tiny-test"
    model = args.model.resolve() if args.model else ensure_standin(DEFAULT_MODEL_DIR)
    started = time.perf_counter()
    info = machine()

    with tempfile.TemporaryDirectory(prefix="lora-chat-bench-") as work:
        bench = Benchmark(model, args.device, PLANS[mode], Path(work))
        try:
            results = bench.run()
        except Exception:
            log = Path(work) / "children.log"
            if log.exists():
                print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise

    results = {
        **{k: v for k, v in results.items() if k not in ("samples", "medians")},
        "mode": mode,
        "device": args.device,
        "model": str(model),
        "duration_s": round(time.perf_counter() - started, 1),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": info,
        "medians": results["medians"],
        "samples": results["samples"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    print(table(results))
    print(f"\n{mode} run on {info['cpu']}, {info['cores']} cores, device {args.device}, in {results['duration_s']:.0f} s; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Write a local stand-in for google/flan-t5-small: config, random weights and a tokenizer.

The folder loads through the same ``from_pretrained`` code as the real model. Use it for
tests, benchmarks and trials on machines that cannot reach the model hub:

    python scripts/make_standin_model.py /tmp/flan-shape --shape flan-t5-small
    lora-chat --base-model /tmp/flan-shape

``--shape flan-t5-small`` copies flan-t5-small's architecture (about 77.0 M parameters,
lm_head not tied to the embeddings), so timings match the real model; its answers are
noise because the weights are random. ``--shape tiny`` is a model of a few hundred KB for
fast tests. The tokenizer is a T5-style Unigram tokenizer trained on ``sample_data/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import string
import sys
from pathlib import Path

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"

# Extra text so that everyday prompts outside the sample data still tokenise into pieces.
EXTRA_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "Please answer the question in one short sentence.",
    "What is the weather like today? It is sunny and warm.",
    "Translate to German: good morning. Summarize this text. Question: Answer:",
    "one two three four five six seven eight nine ten hundred thousand",
]

# flan-t5-small's config.json, minus fields that only name the checkpoint.
SHAPES = {
    "flan-t5-small": dict(
        d_model=512, d_ff=1024, d_kv=64, num_heads=6, num_layers=8, num_decoder_layers=8,
        vocab_size=32128, relative_attention_num_buckets=32, relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu", dropout_rate=0.1, layer_norm_epsilon=1e-6,
        tokenizer_vocab=8000, extra_ids=100,
    ),
    "tiny": dict(
        d_model=32, d_ff=64, d_kv=8, num_heads=2, num_layers=2, num_decoder_layers=2,
        vocab_size=None, relative_attention_num_buckets=8, relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu", dropout_rate=0.0, layer_norm_epsilon=1e-6,
        tokenizer_vocab=600, extra_ids=0,
    ),
}


def sample_texts() -> list[str]:
    texts: list[str] = list(EXTRA_TEXT)
    for path in sorted(SAMPLE_DATA.glob("*")):
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        elif path.suffix == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        else:
            continue
        for row in rows:
            texts.extend(str(value) for value in row.values())
    return texts


def build_tokenizer(vocab_size: int, extra_ids: int):
    from tokenizers import SentencePieceUnigramTokenizer
    from transformers import T5Tokenizer

    trainer = SentencePieceUnigramTokenizer()
    trainer.train_from_iterator(
        sample_texts(),
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        initial_alphabet=list(string.ascii_letters + string.digits + string.punctuation),
        show_progress=False,
    )
    unigram = json.loads(trainer._tokenizer.to_str())["model"]
    vocab = [(piece, score) for piece, score in unigram["vocab"]]
    return T5Tokenizer(vocab=vocab, extra_ids=extra_ids)


def make_standin(out_dir: Path, shape: str = "tiny", seed: int = 0) -> Path:
    """Write the stand-in into ``out_dir`` and return the folder."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    spec = dict(SHAPES[shape])
    tokenizer = build_tokenizer(spec.pop("tokenizer_vocab"), spec.pop("extra_ids"))
    if spec["vocab_size"] is None:
        spec["vocab_size"] = -(-len(tokenizer) // 8) * 8

    config = T5Config(
        **spec,
        is_encoder_decoder=True,
        decoder_start_token_id=tokenizer.pad_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)

    # A T5Config made in code ties lm_head to the embeddings whatever tie_word_embeddings
    # says (transformers 5.x), while flan-t5-small has its own lm_head, so give it one.
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.shared.weight) * config.d_model**-0.5)
    model.config.tie_word_embeddings = False

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)

    config_path = out_dir / "config.json"
    saved = json.loads(config_path.read_text())
    saved["tie_word_embeddings"] = False
    saved["lora_chat_standin"] = f"{shape} stand-in with random weights, seed {seed}"
    config_path.write_text(json.dumps(saved, indent=2) + "\n")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="folder to write the stand-in into")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny", help="model size (default: tiny)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights (default: 0)")
    args = parser.parse_args(argv)

    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    out = make_standin(args.dir, args.shape, args.seed)
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(f"wrote {args.shape} stand-in to {out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

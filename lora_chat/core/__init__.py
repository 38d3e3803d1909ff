"""The engine: datasets, training, the adapter library, inference and settings.

Nothing here imports Textual, and torch, transformers, peft and datasets are
imported inside the functions that need them, so importing this package is cheap.
"""

"""`segue models`: the models Segue knows, their size, licence and whether they are on this machine."""

import argparse

from bridge.engine.catalog import KNOWN_MODELS, LOCAL_RANDOM_MODELS
from bridge.engine.loading import random_model_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list known models and whether each is cached")
    parser.set_defaults(handler=run_models)


def is_cached(model_id: str) -> bool:
    if model_id in LOCAL_RANDOM_MODELS:
        return (random_model_dir(model_id) / "model.safetensors").is_file()
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model_id, "model.safetensors"), str)


def run_models(args: argparse.Namespace) -> int:
    print(f"{'model':34} {'size':>8}  {'ch':>2}  {'cached':6}  licence / notes")
    for model in KNOWN_MODELS:
        size = f"{model.size_gb:.1f} GB" if model.size_gb >= 0.1 else "<1 MB"
        cached = "yes" if is_cached(model.model_id) else "no"
        print(f"{model.model_id:34} {size:>8}  {model.channels:>2}  {cached:6}  {model.licence}; {model.description}")
    print("\nAny other MusicGen id (org/name) or a local model folder works with --model too.")
    return 0

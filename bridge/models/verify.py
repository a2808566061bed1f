"""Prove a downloaded model loads before calling it ready: load it once, in a separate process.

A separate process keeps the caller (the panel, whose engine may hold another model) from holding
a second multi-GB model in memory, and survives the loader being killed for lack of memory.
"""

import multiprocessing
from pathlib import Path

from bridge.errors import ModelError


def verify_model_loads(folder: Path) -> None:
    """Load the checkpoint in `folder` on the CPU in a child process; raise ModelError if it fails."""
    problem = run_in_child(_load, (str(folder),), "segue-verify-model")
    if problem is not None:
        raise ModelError(f"the downloaded model does not load: {problem}")


def run_in_child(target, args: tuple, name: str) -> str | None:
    """Run `target(*args, sender)` in a spawned process; its answer (None: done), or why it died."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(*args, sender), name=name, daemon=True)
    process.start()
    sender.close()
    try:
        problem = receiver.recv()
    except EOFError:
        problem = "it stopped without an answer (out of memory?)"
    process.join()
    return problem


def _load(folder: str, sender) -> None:
    try:
        from bridge.engine.families import load_generator  # the folder's own family (MusicGen, Stable Audio)

        load_generator(folder, "cpu")
        sender.send(None)
    except BaseException as error:  # noqa: BLE001 - every failure is the answer
        sender.send(str(error).splitlines()[0] if str(error) else type(error).__name__)

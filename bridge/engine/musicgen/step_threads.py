"""How many intra-op threads each op of a one-token decoder step gets: all for the weights, one for the rest.

A step is ~150 matmuls that each read megabytes of weights, and ~500 small ops (norms, GELU,
residual adds, activation quantisation, sampling) on a few thousand numbers. Every op that PyTorch
runs in parallel wakes the sleeping OpenMP threads (they wait passively: bridge/engine/worker.py),
which costs ~8 us, more than the small op's own work: a 2-row `dequantize` took 9.2 us on 2
threads and 0.9 us on one (bench/engine_speed.py's step breakdown shows the whole effect). So a
step runs its small ops on the calling thread alone and hands the full team only to the calls that
read the weights or a long key/value cache. Switching the count costs ~0.2 us.

The thread count is the calling thread's own (OpenMP keeps it per thread), so the state here is too.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

Result = TypeVar("Result")
_state = threading.local()


@contextmanager
def small_ops_on_one_thread() -> Iterator[None]:
    """Run the block's ops on one thread; `on_every_thread` inside it still gets the full team."""
    outer = getattr(_state, "threads", None)
    if outer is not None:  # nested: already on one thread
        yield
        return
    threads = torch.get_num_threads()
    _state.threads = threads
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        _state.threads = None


def on_every_thread(run: Callable[..., Result], *args: object, **kwargs: object) -> Result:
    """`run(*args, **kwargs)` with every intra-op thread, also inside `small_ops_on_one_thread` (for
    the kernels that read weights or a long cache)."""
    threads = getattr(_state, "threads", None)
    if threads is None or threads == 1:
        return run(*args, **kwargs)
    torch.set_num_threads(threads)
    try:
        return run(*args, **kwargs)
    finally:
        torch.set_num_threads(1)


def team_size() -> int:
    """The threads a call that reads the weights gets: the full team, also inside `small_ops_on_one_thread`
    (Segue's native kernels take it as an argument: no switching PyTorch's count around them)."""
    threads = getattr(_state, "threads", None)
    return torch.get_num_threads() if threads is None else threads

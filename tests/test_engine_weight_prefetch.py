"""The thread that reads a fast-mode step's next weights ahead (native/weight_prefetch.c, weight_prefetch.py)."""

import gc
import sys
import time
from pathlib import Path

import pytest
import torch

from bridge.engine.musicgen.fast_decoder import FastDecoder
from bridge.engine.musicgen.native_int8 import native_int8_available
from bridge.engine.musicgen.weight_prefetch import bytes_read_ahead, last_level_cache_bytes, stop_prefetching

pytestmark = [
    pytest.mark.skipif(not native_int8_available(), reason="Segue's kernel library could not be built here"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reading thread sleeps on a Linux futex"),
]


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    stop_prefetching()
    yield
    stop_prefetching()
    torch.set_num_threads(threads)


def threads_of_this_process() -> int:
    return len(list(Path("/proc/self/task").iterdir()))


def steps(decoder: FastDecoder, count: int = 12) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    text = torch.randn(1, 5, decoder.hidden_size, generator=generator)
    tokens = torch.randint(0, decoder.vocab_size, (2, decoder.num_codebooks, count), generator=generator)
    with torch.inference_mode():
        session = decoder.start(text, torch.ones(1, 5, dtype=torch.long), 1, 2, count + 4)
        return [session(tokens[:, :, position : position + 1]) for position in range(count)]


def read_ahead_after(before: int, seconds: float = 10.0) -> int:
    """Bytes read ahead since `before`, once the thread has read some (it runs when no call does)."""
    deadline = time.monotonic() + seconds
    while bytes_read_ahead() == before and time.monotonic() < deadline:
        time.sleep(0.01)
    return bytes_read_ahead() - before


def test_a_decoder_has_its_next_weights_read_ahead_and_steps_to_the_same_bits(tiny_model, two_threads, monkeypatch):
    monkeypatch.setenv("SEGUE_WEIGHT_PREFETCH", "0")
    before = bytes_read_ahead()
    without = steps(FastDecoder(tiny_model, "int8", kernel="native-int8"))
    assert read_ahead_after(before, seconds=0.2) == 0  # switched off: no thread
    monkeypatch.delenv("SEGUE_WEIGHT_PREFETCH")
    decoder = FastDecoder(tiny_model, "int8", kernel="native-int8")
    with_reading = steps(decoder)
    for got, expected in zip(with_reading, without, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)  # it only reads
    assert read_ahead_after(before) > 0
    assert last_level_cache_bytes() >= 1 << 20  # the budget: half of it


def test_the_reading_thread_ends_when_its_decoder_goes_and_one_serves_every_decoder(tiny_model, two_threads):
    before = threads_of_this_process()
    first = FastDecoder(tiny_model, "int8", kernel="native-int8")
    steps(first, 2)
    assert threads_of_this_process() == before + 1
    second = FastDecoder(tiny_model, "int8", kernel="native-int8")
    steps(second, 2)  # its order replaces the first's: still one thread
    assert threads_of_this_process() == before + 1
    del first
    gc.collect()
    assert threads_of_this_process() == before + 1  # the first is no longer the one read ahead for
    del second
    gc.collect()
    assert threads_of_this_process() == before  # joined: nothing reads the freed weights


def test_no_thread_with_one_thread_in_the_team_or_switched_off(tiny_model, two_threads, monkeypatch):
    before = threads_of_this_process()
    torch.set_num_threads(1)  # no idle core for it in the gaps
    steps(FastDecoder(tiny_model, "int8", kernel="native-int8"), 2)
    assert threads_of_this_process() == before
    torch.set_num_threads(2)
    monkeypatch.setenv("SEGUE_WEIGHT_PREFETCH", "0")
    steps(FastDecoder(tiny_model, "int8", kernel="native-int8"), 2)
    assert threads_of_this_process() == before

"""The threads a step's native calls share (native/step_team.c): same bits on any count, asleep when idle,
safe with a second caller and after a fork."""

import multiprocessing
import resource
import threading
import time

import pytest
import torch

from bridge.engine.musicgen import native_int8
from bridge.engine.musicgen.native_attention import attend_one_query, native_attention_available
from bridge.engine.musicgen.native_int8 import NativeInt8Linear

pytestmark = pytest.mark.skipif(native_int8.compiler() is None, reason="no C compiler on this machine")


def run_on(threads: int, run):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return run()
    finally:
        torch.set_num_threads(before)


def test_a_step_matmul_gives_the_same_bits_on_one_to_four_threads():
    linear = NativeInt8Linear(torch.randn(1030, 96, generator=torch.Generator().manual_seed(1)))  # blocks split unevenly
    x = torch.randn(3, 96)  # a pair and an odd row
    results = [run_on(threads, lambda: linear(x)) for threads in (1, 2, 3, 4)]
    assert all(torch.equal(results[0], other) for other in results[1:])
    torch.testing.assert_close(results[0], x @ linear.dequantized().T, rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(not native_attention_available(), reason="Segue's kernel library is not built for AVX2 here")
def test_attention_gives_the_same_bits_on_one_to_four_threads():
    generator = torch.Generator().manual_seed(2)
    qkv = torch.randn(2, 1, 3 * 5 * 16, generator=generator)  # 10 (row, head) tasks: uneven on 3 and 4
    caches = [torch.randn(2, 5, 40, 16, generator=generator) for _ in range(2)]

    def attend():
        keys, values = (cache.clone() for cache in caches)
        return attend_one_query(qkv, keys, values, 33, 5)

    results = [run_on(threads, attend) for threads in (1, 2, 3, 4)]
    assert all(torch.equal(results[0], other) for other in results[1:])


def test_two_callers_at_once_each_get_their_own_right_result():
    linears = [NativeInt8Linear(torch.randn(512, 256)) for _ in range(2)]
    inputs = [torch.randn(2, 256) for _ in range(2)]
    expected = [run_on(1, lambda linear=linear, x=x: linear(x)) for linear, x in zip(linears, inputs, strict=True)]
    failures = []

    def hammer(index: int) -> None:
        for _ in range(300):
            if not torch.equal(linears[index](inputs[index]), expected[index]):
                failures.append(index)

    threads = [threading.Thread(target=hammer, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a caller is stuck"
    assert failures == []


def test_its_threads_sleep_between_jobs():
    linear = NativeInt8Linear(torch.randn(2048, 1024))
    x = torch.randn(2, 1024)
    run_on(2, lambda: [linear(x) for _ in range(50)])  # the team is up and has just worked
    time.sleep(0.2)  # past its spin: asleep
    started = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(1.0)
    ended = resource.getrusage(resource.RUSAGE_SELF)
    busy = (ended.ru_utime - started.ru_utime) + (ended.ru_stime - started.ru_stime)
    assert busy < 0.2, f"{busy:.2f} s of CPU in a second of idling: a thread is spinning"


def test_a_forked_child_runs_the_kernels_with_a_team_of_its_own():
    linear = NativeInt8Linear(torch.randn(256, 128, generator=torch.Generator().manual_seed(3)))
    x = torch.randn(2, 128, generator=torch.Generator().manual_seed(4))
    expected = run_on(2, lambda: linear(x))  # the parent's team exists before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    # The child calls the kernel only: PyTorch's own OpenMP ops may hang in a forked child once the
    # parent has used them (GNU OpenMP is not fork-safe), whatever Segue's threads do.
    child = context.Process(target=lambda: queue.put(run_on(2, lambda: linear(x)).tolist()))
    child.start()
    try:
        got = torch.tensor(queue.get(timeout=60))
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    assert torch.equal(got, expected)

"""EnCodec's LSTM recurrence in one native call per layer (native_lstm.py, native/lstm.c): nn.LSTM's results."""


import pytest
import torch
from torch import nn

from bridge.engine.musicgen import native_int8, native_lstm
from bridge.engine.musicgen.native_lstm import native_lstm_applies, run_lstm
from tests.native_builds import portable_library

pytestmark = pytest.mark.skipif(
    not native_lstm.native_attention_available(), reason="the native LSTM runs where the kernels build for AVX2 + FMA"
)


def lstm_and_input(hidden: int, layers: int, frames: int, streams: int, seed: int):
    torch.manual_seed(seed)
    lstm = nn.LSTM(hidden, hidden, layers).eval()
    with torch.no_grad():  # EnCodec's trained gates saturate more than nn.LSTM's default init: widen them
        for parameter in lstm.parameters():
            parameter.mul_(3.0)
    sequence = torch.randn(frames, streams, hidden)
    state = (0.5 * torch.randn(layers, streams, hidden), 0.5 * torch.randn(layers, streams, hidden))
    return lstm, sequence, state


@pytest.mark.parametrize(
    ("hidden", "layers", "frames", "streams"),
    [
        (1024, 2, 3, 1),  # musicgen's codec, a streaming chunk
        (1024, 2, 200, 1),  # and 4 s of a prompt: no drift over the recurrence
        (64, 2, 300, 2),  # a long prompt, stereo: the recurrence over hundreds of frames
        (34, 1, 17, 3),  # units that are not whole 8-lane vectors, odd streams
        (32, 3, 1, 1),  # one frame
    ],
)
def test_run_lstm_gives_nn_lstms_outputs_and_state(hidden, layers, frames, streams):
    lstm, sequence, state = lstm_and_input(hidden, layers, frames, streams, seed=hidden + frames)
    kept = tuple(part.clone() for part in state)
    with torch.inference_mode():
        assert native_lstm_applies(lstm, sequence)
        expected, (expected_h, expected_c) = lstm(sequence, state)
        output, (h, c) = run_lstm(lstm, sequence, state)
        fresh, fresh_state = run_lstm(lstm, sequence)  # no state: zeros, as nn.LSTM
        expected_fresh, expected_fresh_state = lstm(sequence)
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(h, expected_h, rtol=0, atol=1e-5)
    torch.testing.assert_close(c, expected_c, rtol=0, atol=1e-5)
    torch.testing.assert_close(fresh, expected_fresh, rtol=0, atol=1e-5)
    torch.testing.assert_close(fresh_state[1], expected_fresh_state[1], rtol=0, atol=1e-5)
    assert all(torch.equal(before, after) for before, after in zip(kept, state, strict=True))  # the input state untouched
    assert output.abs().max() > 0.1  # not a saturated or silent LSTM: equality would prove little


def test_the_native_call_runs_instead_of_nn_lstm_and_in_pieces_equals_one_call():
    """Chunk after chunk with the state carried (the streaming decode) gives one call's bits, and
    nn.LSTM's forward never runs."""
    lstm, sequence, _ = lstm_and_input(64, 2, 40, 2, seed=1)
    calls = []
    hook = lstm.register_forward_hook(lambda module, inputs, output: calls.append(1))
    try:
        with torch.inference_mode():
            whole, whole_state = run_lstm(lstm, sequence)
            state, pieces = None, []
            for start, end in [(0, 4), (4, 12), (12, 37), (37, 40)]:
                piece, state = run_lstm(lstm, sequence[start:end], state)
                pieces.append(piece)
    finally:
        hook.remove()
    assert not calls
    # (to float rounding: PyTorch's GEMM of the input products rounds differently for another row count)
    torch.testing.assert_close(torch.cat(pieces), whole, rtol=0, atol=1e-6)
    for piecewise, at_once in zip(state, whole_state, strict=True):
        torch.testing.assert_close(piecewise, at_once, rtol=0, atol=1e-6)


def test_the_thread_count_does_not_change_a_bit():
    """A chunk's recurrence on the one-thread chunk thread and on the whole team round alike: each
    unit's sums are one thread's, in one order."""
    hidden, frames, streams = 1024, 6, 2
    generator = torch.Generator().manual_seed(2)
    projected = torch.randn(frames, streams, 4 * hidden, generator=generator)
    recurrent = 0.05 * torch.randn(4 * hidden, hidden, generator=generator)
    results = []
    for threads in (1, 2, 3):
        h, c = torch.zeros(streams, hidden), torch.ones(streams, hidden)
        out = torch.empty(frames, streams, hidden)
        status = native_int8.library().segue_lstm_layer(
            projected.data_ptr(), frames, streams, hidden, recurrent.data_ptr(), h.data_ptr(), c.data_ptr(),
            out.data_ptr(), threads)
        assert status == 0
        results.append((out, h, c))
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other, strict=True))
    assert torch.equal(results[0][1], results[0][0][-1])  # h is the last frame's output
    odd = native_int8.library().segue_lstm_layer(projected.data_ptr(), frames, streams, 1023, recurrent.data_ptr(),
                                                  h.data_ptr(), c.data_ptr(), out.data_ptr(), 1)
    assert odd == -2  # an odd number of units is refused, not read past


def test_what_the_native_call_does_not_cover_runs_as_nn_lstm():
    lstm, sequence, _ = lstm_and_input(32, 1, 5, 1, seed=3)
    assert not native_lstm_applies(lstm, sequence.double())
    assert not native_lstm_applies(nn.LSTM(32, 32, batch_first=True), sequence)
    assert not native_lstm_applies(nn.LSTM(32, 32, bidirectional=True), sequence)
    assert not native_lstm_applies(nn.LSTM(32, 32, proj_size=16), sequence)
    with torch.enable_grad():
        assert not native_lstm_applies(lstm, sequence.requires_grad_())  # training: autograd needs nn.LSTM
    with torch.inference_mode():
        output, _ = run_lstm(nn.LSTM(32, 32).double(), sequence.detach().double())
    assert output.dtype == torch.float64  # nn.LSTM's own


def test_the_portable_c_path_computes_the_same_recurrence(tmp_path, monkeypatch):
    portable = portable_library(tmp_path)
    lstm, sequence, state = lstm_and_input(48, 2, 20, 2, seed=4)
    with torch.inference_mode():
        avx2 = run_lstm(lstm, sequence, state)[0]
        monkeypatch.setattr(native_lstm, "library", lambda: portable)
        torch.testing.assert_close(run_lstm(lstm, sequence, state)[0], avx2, rtol=0, atol=1e-5)

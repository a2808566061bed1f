"""EnCodec's LSTM in a native call per layer: the input products as one GEMM, the recurrence in C.

Each of EnCodec's two LSTM layers multiplies its 4096 x 1024 fp32 recurrent matrix (16.8 MB) by the
last frame's output, frame after frame. `native/lstm.c` runs a layer's whole recurrence in one
call, the threads splitting the units, each reading its rows once per frame. `bench/codec_decode.py`
on musicgen-small's codec, 2-core AMD EPYC (flags avx2 fma), against nn.LSTM in the same run: a
4-frame chunk of the streaming decode on one thread 16.8 against 40.3 ms, a 25-frame one 61.5
against 109.1; the whole streaming decode 9.2 against 13.3 ms a frame; an 8 s prompt's 400 frames
on both threads 292 against 334 ms mono, 421 against 1302 stereo.

`run_lstm` takes and returns what nn.LSTM's forward does for (frames, streams, features) input; it
runs the native call where the library was built for AVX2 + FMA (its sigmoid and tanh are written
for them), on CPU fp32 tensors, and nn.LSTM's own forward otherwise (a GPU, training, other LSTM
options). A unit's sums do not depend on the thread count, so a chunk decoded on the one-thread
chunk thread gives the same bits as on the whole team.
"""

import torch
from torch import nn

from bridge.engine.musicgen.native_attention import native_attention_available
from bridge.engine.musicgen.native_int8 import library

LstmState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, streams, hidden)


def native_lstm_applies(lstm: nn.LSTM, sequence: torch.Tensor) -> bool:
    """Whether `run_lstm` runs this LSTM on this input natively."""
    weight = lstm.weight_hh_l0
    return (
        sequence.device.type == "cpu" and weight.device.type == "cpu" and sequence.dtype == torch.float32
        and weight.dtype == torch.float32 and sequence.dim() == 3 and not lstm.batch_first
        and not lstm.bidirectional and lstm.proj_size == 0 and lstm.bias and lstm.hidden_size % 2 == 0
        and not (torch.is_grad_enabled() and (sequence.requires_grad or weight.requires_grad))
        and native_attention_available()  # the library, built for AVX2 + FMA
    )


def run_lstm(lstm: nn.LSTM, sequence: torch.Tensor, state: LstmState | None = None) -> tuple[torch.Tensor, LstmState]:
    """`lstm(sequence, state)`: sequence (frames, streams, features) -> (output, (h, c))."""
    if not native_lstm_applies(lstm, sequence):
        return lstm(sequence, state)
    frames, streams, _ = sequence.shape
    hidden, layers = lstm.hidden_size, lstm.num_layers
    if state is None:
        h = sequence.new_zeros((layers, streams, hidden))
        c = sequence.new_zeros((layers, streams, hidden))
    else:  # copies: the caller's state stays as it was, as with nn.LSTM
        h, c = (part.to(torch.float32).contiguous().clone() for part in state)
    lib, threads = library(), torch.get_num_threads()
    layer_input = sequence
    for layer in range(layers):
        recurrent = getattr(lstm, f"weight_hh_l{layer}").detach().contiguous()
        bias = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
        weight_ih = getattr(lstm, f"weight_ih_l{layer}")
        projected = torch.addmm(bias, layer_input.reshape(frames * streams, -1), weight_ih.t()).contiguous()
        output = sequence.new_empty((frames, streams, hidden))
        status = lib.segue_lstm_layer(projected.data_ptr(), frames, streams, hidden, recurrent.data_ptr(),
                                      h[layer].data_ptr(), c[layer].data_ptr(), output.data_ptr(), threads)
        if status == -2:
            raise ValueError(f"native LSTM: {frames} frames of {streams} streams at {hidden} units is not a shape it takes")
        if status != 0:
            raise MemoryError("native LSTM: out of memory")
        layer_input = output
    return layer_input, (h, c)

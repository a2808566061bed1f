"""A decoder session's one-token steps replayed as a captured CUDA graph (fast_decoder.FastDecoder's `graphed`)."""

import logging
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from bridge.engine.musicgen.fast_decoder import DecoderSession


class GraphedStep:
    """Runs a session's one-token steps as a captured CUDA graph; the prefill stays eager.

    On CUDA the first step is captured (after a warm-up on a side stream) and every later step is
    one replay over fixed input buffers. Elsewhere the same fixed-shape step runs eagerly, which
    keeps this logic testable on a CPU.
    """

    def __init__(self, session: "DecoderSession") -> None:
        self.session = session
        device = session.keys.device
        self.input_ids = torch.zeros((session.rows, session.decoder.num_codebooks, 1), dtype=torch.long, device=device)
        self.position = torch.zeros((), dtype=torch.long, device=device)
        self.capture = device.type == "cuda"
        self.graph = None
        self.output: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        session = self.session
        if input_ids.shape[-1] > 1 or session.position == 0:  # the prefill (a melody prefix too) stays eager
            return session(input_ids)
        self.input_ids.copy_(input_ids)
        self.position.fill_(session.position)
        if self.capture and self.graph is None:
            try:
                self._capture()
            except RuntimeError as error:  # e.g. an op that cannot be captured on this GPU/driver
                logging.getLogger(__name__).warning("CUDA graph capture failed, stepping eagerly: %s", error)
                self.capture, self.graph = False, None
        if self.capture:
            self.graph.replay()
        else:
            self.output = session.static_step(self.input_ids, self.position)
        session.position += 1
        return self.output.clone()

    def _capture(self) -> None:
        session = self.session
        # The warm-up writes the current position's cache entries, which the replay rewrites identically.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            session.static_step(self.input_ids, self.position)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = session.static_step(self.input_ids, self.position)

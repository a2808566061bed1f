"""The prefill of an audio prompt, by distinct row: once for all takes, and the unguided row ahead of time.

An audio prompt of 8 s is ~400 positions per row, and its prefill is a run of GEMMs whose cost is
FLOPs, not bytes: doing less of it is the only way to make it faster. Two facts make that possible:
- every take of a request starts from the same prompt and the same text, so the guided rows are
  identical, and so are the unguided ones: each distinct row is computed once and its keys/values
  are copied to every take;
- the unguided row attends to no text (its cross-attention adds exactly zero, see fast_decoder), so
  its prefill depends on the prompt's codes alone: it can be computed before the producer has typed
  the text (bridge.engine.musicgen.prepared_prompt), and the job only computes the guided row.
The unguided row is always computed alone, prepared or not, so both paths give the same numbers to
the last bit (a row batched with another could round differently: the dynamic int8 kernels choose
their activation scale over every row of the call).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from bridge.engine.musicgen.fast_decoder import DecoderSession, FastDecoder
from bridge.engine.musicgen.graphed_step import GraphedStep

if TYPE_CHECKING:
    from bridge.engine.musicgen.sampling import Conditioning


@dataclass(frozen=True)
class RowPrefill:
    """One row's self-attention keys/values over a prompt's positions and its logits at the last one."""

    input_ids: torch.Tensor  # (codebooks, positions): what it was computed from
    keys: torch.Tensor  # (layers, heads, positions, head_dim)
    values: torch.Tensor
    logits: torch.Tensor  # (codebooks, vocab)

    def matches(self, input_ids: torch.Tensor) -> bool:
        return self.input_ids.shape == input_ids.shape and bool(torch.equal(self.input_ids, input_ids))


@dataclass
class UnguidedSlot:
    """A job's unguided row: a prepared one is read from it, one computed by the job is kept in it."""

    row: RowPrefill | None = None


@torch.inference_mode()
def prefill_row(
    decoder: FastDecoder, input_ids: torch.Tensor, text_states: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None,
) -> RowPrefill:
    """Run one row (codebooks, positions) through the decoder: guided with its (1, tokens, hidden) text
    states and mask, unguided without."""
    positions = input_ids.shape[-1]
    if text_states is None:  # no text rows: the session skips cross-attention, as for the unguided branch
        text_states = decoder.positions.new_zeros((0, 1, decoder.hidden_size))
        text_mask = torch.zeros((0, 1), dtype=torch.long, device=text_states.device)
    session = DecoderSession(decoder, text_states, text_mask, 1, positions, zeroed=False)
    logits = session(input_ids[None])[0]
    return RowPrefill(input_ids.clone(), session.keys[:, 0], session.values[:, 0], logits)


def unguided_prefill(decoder: FastDecoder, input_ids: torch.Tensor) -> RowPrefill:
    """The unguided row's prefill of a prompt (codebooks, positions): it needs no text."""
    return prefill_row(decoder, input_ids)


def prefill_by_row(
    run: DecoderSession | GraphedStep | Callable,
    conditioning: "Conditioning",
    inputs: torch.Tensor,
    unguided: UnguidedSlot | None = None,
) -> torch.Tensor | None:
    """Prefill a session's window with `inputs` (batch, codebooks, positions), once per distinct row.

    Returns the logits (rows, codebooks, vocab) the session's own call would, or None where this does
    not apply (a single token, takes with different histories, a melody prefix, not one of Segue's
    decoder sessions); the caller then runs the session as usual. `unguided.row` is used if it was
    made from these inputs, and holds the unguided row afterwards.
    """
    session = run.session if isinstance(run, GraphedStep) else run
    batch, _, positions = inputs.shape
    if not isinstance(session, DecoderSession) or positions < 2 or conditioning.prefix or session.position != 0:
        return None
    if not all(torch.equal(inputs[0], inputs[take]) for take in range(1, batch)):
        return None
    row = inputs[0]
    guided = prefill_row(session.decoder, row, conditioning.hidden_states[:1], conditioning.attention_mask[:1])
    rows = [(guided, slice(0, batch))]
    if conditioning.guided:
        slot = unguided if unguided is not None else UnguidedSlot()
        if slot.row is None or not slot.row.matches(row):
            slot.row = unguided_prefill(session.decoder, row)
        rows.append((slot.row, slice(batch, 2 * batch)))
    logits = []
    for prefill, takes in rows:
        session.keys[:, takes, :, :positions] = prefill.keys[:, None]
        session.values[:, takes, :, :positions] = prefill.values[:, None]
        logits.append(prefill.logits.expand(batch, *prefill.logits.shape))
    session.position = positions
    return torch.cat(logits)

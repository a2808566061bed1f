"""The prefill of an audio prompt, by distinct row: once for all takes, and the unguided row ahead of time.

An audio prompt of 8 s is ~400 positions per row, and its prefill is a run of GEMMs whose cost is
FLOPs, not bytes: doing less of it is the only way to make it faster. Two facts make that possible:
- every take of a request starts from the same prompt and the same text, so the guided rows are
  identical, and so are the unguided ones: each distinct row is computed once and its keys/values
  are copied to every take;
- the unguided row attends to no text (its cross-attention adds exactly zero, see fast_decoder), so
  its prefill depends on the prompt's codes alone: it can be computed before the producer has typed
  the text (bridge.engine.musicgen.prepared_prompt), and the job only computes the guided row;
- the guided row depends on the codes and the text alone: once the text is known (the panel's text
  as it stands, or the same text pressed again for another take) it can be computed ahead too, and
  the job then runs only its steps.
Each row is always computed alone, prepared or not, so both paths give the same numbers to the last
bit (a row batched with another could round differently: the dynamic int8 kernels choose their
activation scale over every row of the call).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
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
class RowSlot:
    """A place for one row's prefill: a prepared one is read from it, one computed by a job is kept in it."""

    row: RowPrefill | None = None

    def kept(self, input_ids: torch.Tensor, compute: Callable[[], RowPrefill]) -> RowPrefill:
        """The row kept here if it was computed from `input_ids`, else `compute()` (then kept)."""
        if self.row is None or not self.row.matches(input_ids):
            self.row = compute()
        return self.row


@dataclass
class PromptRows:
    """A prompt's first-window rows a job reads and keeps: the unguided one, and the guided one of its text."""

    unguided: RowSlot = field(default_factory=RowSlot)
    guided: RowSlot = field(default_factory=RowSlot)


@torch.inference_mode()
def prefill_row(
    decoder: FastDecoder, input_ids: torch.Tensor, text_states: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None, should_cancel: Callable[[], bool] | None = None,
) -> RowPrefill:
    """Run one row (codebooks, positions) through the decoder: guided with its (1, tokens, hidden) text
    states and mask, unguided without. `should_cancel` is asked between layers (CancelledError)."""
    positions = input_ids.shape[-1]
    if text_states is None:  # no text rows: the session skips cross-attention, as for the unguided branch
        text_states = decoder.positions.new_zeros((0, 1, decoder.hidden_size))
        text_mask = torch.zeros((0, 1), dtype=torch.long, device=text_states.device)
    session = DecoderSession(decoder, text_states, text_mask, 1, positions, zeroed=False)
    session.should_cancel = should_cancel
    logits = session(input_ids[None])[0]
    return RowPrefill(input_ids.clone(), session.keys[:, 0], session.values[:, 0], logits)


def unguided_prefill(decoder: FastDecoder, input_ids: torch.Tensor) -> RowPrefill:
    """The unguided row's prefill of a prompt (codebooks, positions): it needs no text."""
    return prefill_row(decoder, input_ids)


def prefill_by_row(
    run: DecoderSession | GraphedStep | Callable,
    conditioning: "Conditioning",
    inputs: torch.Tensor,
    kept: PromptRows | None = None,
) -> torch.Tensor | None:
    """Prefill a session's window with `inputs` (batch, codebooks, positions), once per distinct row.

    Returns the logits (rows, codebooks, vocab) the session's own call would, or None where this does
    not apply (a single token, takes with different histories, a melody prefix, not one of Segue's
    decoder sessions); the caller then runs the session as usual. The rows in `kept` are used if they
    were made from these inputs (its guided slot must be the conditioning's text's), and hold the rows
    afterwards.
    """
    session = run.session if isinstance(run, GraphedStep) else run
    batch, _, positions = inputs.shape
    if not isinstance(session, DecoderSession) or positions < 2 or conditioning.prefix or session.position != 0:
        return None
    if not all(torch.equal(inputs[0], inputs[take]) for take in range(1, batch)):
        return None
    row, decoder = inputs[0], session.decoder
    kept = kept if kept is not None else PromptRows()
    text_states, text_mask = conditioning.hidden_states[:1], conditioning.attention_mask[:1]
    rows = [(kept.guided.kept(row, lambda: prefill_row(decoder, row, text_states, text_mask)), slice(0, batch))]
    if conditioning.guided:
        rows.append((kept.unguided.kept(row, lambda: unguided_prefill(decoder, row)), slice(batch, 2 * batch)))
    logits = []
    for prefill, takes in rows:
        session.keys[:, takes, :, :positions] = prefill.keys[:, None]
        session.values[:, takes, :, :positions] = prefill.values[:, None]
        logits.append(prefill.logits.expand(batch, *prefill.logits.shape))
    session.position = positions
    return torch.cat(logits)

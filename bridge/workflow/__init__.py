""""Continue my track": the bar-locked continuation workflow, Qt-free, shared by the CLI, `segue serve` and the panel.

The steps, one module each: source (the last N bars: loopback capture, REAPER render or a file),
describe (prompt + tempo + accepted key), fit (exact bars, seamless seam, matched loudness, silent
start flagged), place (at the bar where the source ends, or live on the next bar line) and chain
(continue again from a placed take's codes). session.ContinueMyTrack runs them in order.
"""

from bridge.workflow.session import Continuation, ContinueMyTrack, ContinueOptions, FittedTake
from bridge.workflow.source import Source

__all__ = ["ContinueMyTrack", "ContinueOptions", "Continuation", "FittedTake", "Source"]

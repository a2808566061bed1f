"""Open the DAW link the settings name (the panel's Settings dialog writes them).

    link = open_link(load_settings().daw).start()
"""

from bridge.daw.ableton import AbletonLink, reply_port
from bridge.daw.link import DawLink, NoDawLink
from bridge.daw.reaper import ReaperLink
from bridge.errors import InvalidParameterError
from bridge.settings import DawSettings

DAW_CHOICES = ("none", "ableton", "reaper")


def open_link(choice: DawSettings) -> DawLink:
    """A link (not started yet) to the chosen DAW at 127.0.0.1 on the chosen ports."""
    if choice.daw == "ableton":
        return AbletonLink(live_port=choice.ableton_port, listen_port=reply_port())
    if choice.daw == "reaper":
        return ReaperLink(reaper_port=choice.reaper_port, listen_port=choice.reaper_listen_port)
    if choice.daw == "none":
        return NoDawLink()
    raise InvalidParameterError(f"the DAW must be one of {', '.join(DAW_CHOICES)}, got {choice.daw!r}")

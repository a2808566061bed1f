"""One error family whose messages a producer can act on.

Every failure that a user can cause (bad file, impossible duration, unknown model, vanished device or
DAW) is raised as a `SegueError` subclass with a one-line message; entry points (CLI, GUI, OSC server)
show that message instead of a traceback.
"""


class SegueError(Exception):
    """Base class: the message is meant for the producer, in one line."""


class InvalidParameterError(SegueError, ValueError):
    """A parameter is out of range or inconsistent (duration, tempo, temperature, ...)."""


class AudioFileError(SegueError):
    """An audio file is missing, unreadable, empty or in an unsupported format."""


class ModelError(SegueError):
    """A model is unknown, cannot be downloaded (offline) or fails to load."""


class CancelledError(SegueError):
    """A job was cancelled by the user."""


class DeviceError(SegueError):
    """An audio device is missing, ambiguous or failed."""


class DawError(SegueError):
    """The DAW did not answer, answered with an error, or cannot do what was asked."""


class PresetError(SegueError):
    """A preset file is unreadable or a field in it is invalid (the message names file and field)."""


class LibraryError(SegueError):
    """The clip library cannot do what was asked: unknown clip, unreadable database, failed export."""


class SettingsError(SegueError):
    """The settings file is unreadable or holds a value of the wrong kind (the message names both)."""


class CaptureError(DeviceError):
    """Audio asked of the recorder is not in its buffer: not recorded yet, or already overwritten."""


class CalibrationError(DeviceError):
    """The latency calibration click was not heard clearly on the input."""

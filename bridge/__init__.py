"""Segue's headless core: engine, audio, DAW link. Never imports Qt."""

__version__ = "0.1.0"

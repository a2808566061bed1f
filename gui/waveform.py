"""Waveform thumbnails: a min/max envelope per pixel column, drawn as one filled shape.

The envelope is computed once per clip (off the Qt thread, where the clip is saved) and painted
from that small array, so a list of many clips scrolls smoothly.
"""

import numpy as np
from PyQt6.QtCore import QPointF, QRectF
from PyQt6.QtGui import QColor, QPainter, QPainterPath

THUMBNAIL_COLUMNS = 240


def envelope(audio: np.ndarray, columns: int = THUMBNAIL_COLUMNS) -> np.ndarray:
    """Min and max of the mono mix in `columns` equal slices: shape (columns, 2), float32 in [-1, 1]."""
    mono = np.asarray(audio, dtype=np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=1)
    if mono.size == 0:
        return np.zeros((columns, 2), dtype=np.float32)
    # reduceat reduces mono[starts[i]:starts[i+1]]; a clip shorter than `columns` repeats samples.
    starts = (np.arange(columns, dtype=np.int64) * mono.size) // columns
    lows = np.minimum.reduceat(mono, starts)
    highs = np.maximum.reduceat(mono, starts)
    return np.clip(np.stack([lows, highs], axis=1), -1.0, 1.0).astype(np.float32)


def paint_envelope(painter: QPainter, rect: QRectF, peaks: np.ndarray, colour: QColor) -> None:
    """Fill the envelope into `rect`, scaled so the loudest peak nearly touches the edges."""
    if peaks is None or len(peaks) == 0:
        return
    scale = float(np.max(np.abs(peaks))) or 1.0
    middle = rect.center().y()
    half_height = rect.height() / 2.0 * 0.92 / scale
    step = rect.width() / max(1, len(peaks) - 1)
    path = QPainterPath()
    path.moveTo(QPointF(rect.left(), middle - float(peaks[0, 1]) * half_height))
    for column in range(1, len(peaks)):
        path.lineTo(QPointF(rect.left() + column * step, middle - float(peaks[column, 1]) * half_height))
    for column in range(len(peaks) - 1, -1, -1):
        path.lineTo(QPointF(rect.left() + column * step, middle - float(peaks[column, 0]) * half_height))
    path.closeSubpath()
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(colour)
    painter.setBrush(colour)
    painter.drawPath(path)
    painter.restore()

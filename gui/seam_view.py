"""The seam picture of Continue my track: the source's waveform, then a take's, on one scale."""

import numpy as np
from PyQt6.QtCore import QRectF
from PyQt6.QtGui import QColor, QPainter, QPen
from PyQt6.QtWidgets import QWidget

from gui import theme
from gui.waveform import envelope, paint_envelope


class SeamView(QWidget):
    """The source's waveform, then the chosen take's, with the seam between them marked."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(64)
        self._source: np.ndarray | None = None
        self._take: np.ndarray | None = None
        self._label = ""
        self._scale = 1.0

    def show_audio(self, source: np.ndarray | None, take: np.ndarray | None, label: str = "") -> None:
        """Both halves on one scale, so a matched loudness shows as equal heights."""
        self._source = None if source is None else envelope(source, 160)
        self._take = None if take is None else envelope(take, 160)
        shown = [peaks for peaks in (self._source, self._take) if peaks is not None]
        self._scale = max((float(np.max(np.abs(peaks))) for peaks in shown), default=0.0) or 1.0
        self._label = label
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        rect = QRectF(self.rect()).adjusted(1, 1, -1, -1)
        painter.fillRect(rect, QColor(theme.FIELD))
        half = rect.width() / 2
        for peaks, left, colour in ((self._source, rect.left(), theme.MUTED), (self._take, rect.left() + half, theme.WAVEFORM)):
            if peaks is not None:
                # paint_envelope fits each half to its own peak: pad with the common peak to share a scale.
                scaled = np.concatenate([peaks, [[-self._scale, self._scale]]]).astype(np.float32)
                area = QRectF(left, rect.top() + 4, half * len(scaled) / len(peaks), rect.height() - 8)
                painter.save()
                painter.setClipRect(QRectF(left, rect.top(), half, rect.height()))
                paint_envelope(painter, area, scaled, QColor(colour))
                painter.restore()
        painter.setPen(QPen(QColor(theme.ACCENT), 2))
        painter.drawLine(int(rect.left() + half), int(rect.top()), int(rect.left() + half), int(rect.bottom()))
        if self._label:
            painter.setPen(QColor(theme.ACCENT))
            painter.drawText(QRectF(rect.left() + half + 6, rect.top() + 2, half - 8, 16), self._label)
        painter.end()

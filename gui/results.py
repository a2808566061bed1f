"""The results list: clips with waveform thumbnails, dragged out as real files.

A drag carries the clip's file URL (text/uri-list), which Ableton Live, REAPER and file managers all
accept; the drop action is Copy, so the file stays where Segue wrote it.
"""

from pathlib import Path

from PyQt6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
    QUrl,
    pyqtSignal,
)
from PyQt6.QtGui import QColor, QDrag, QFont, QFontMetrics, QPainter, QPen, QPixmap
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from gui import theme
from gui.clip_store import ClipEntry
from gui.waveform import paint_envelope

ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1
ROW_HEIGHT = 66
THUMBNAIL_WIDTH = 150
PADDING = 8
EMPTY_TEXT = (
    "No clips yet.\n\nType a prompt or pick a preset, then Generate (Ctrl+Enter).\n"
    "Drop an audio file here to continue it."
)


def describe_length(entry: ClipEntry) -> str:
    """'4 bars · 8.00 s' (bars to one decimal unless whole), or '8.00 s' without a tempo."""
    seconds = f"{entry.seconds:.2f} s"
    bars = entry.bars
    if bars is None:
        return seconds
    shown = f"{bars:.0f}" if abs(bars - round(bars)) < 0.05 else f"{bars:.1f}"
    return f"{shown} bar{'s' if shown != '1' else ''} · {seconds}"


def clip_mime_data(paths: list[Path]) -> QMimeData:
    """MIME data a DAW accepts as dropped audio files: file URLs of existing clips."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(Path(path).resolve())) for path in paths])
    return mime


class ResultsModel(QAbstractListModel):
    """Clips, newest first. Drags export file URLs. Renaming in place emits `rename_requested`;
    whoever owns the clips applies it and calls `refresh`."""

    rename_requested = pyqtSignal(object, str)  # ClipEntry, new name

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._entries: list[ClipEntry] = []
        self.playing: ClipEntry | None = None

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        entry = self._entries[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return entry.name
        if role == ENTRY_ROLE:
            return entry
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{entry.prompt or entry.name}\nseed {entry.seed}\n{entry.path}"
        return None

    def setData(self, index: QModelIndex, value, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not str(value).strip():
            return False
        entry = self._entries[index.row()]
        if str(value).strip() != entry.name:
            self.rename_requested.emit(entry, str(value).strip())
        return True

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
            | Qt.ItemFlag.ItemIsEditable
            | Qt.ItemFlag.ItemIsDragEnabled
        )

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def mimeData(self, indexes: list[QModelIndex]) -> QMimeData:
        rows = sorted({index.row() for index in indexes if index.isValid()})
        return clip_mime_data([self._entries[row].path for row in rows])

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    # -- editing the list ------------------------------------------------------------------------

    @property
    def entries(self) -> list[ClipEntry]:
        return list(self._entries)

    def add(self, entries: list[ClipEntry], at_end: bool = False) -> None:
        """Insert a batch at the top (new takes, A above B), or at the end (older clips)."""
        if not entries:
            return
        first = len(self._entries) if at_end else 0
        self.beginInsertRows(QModelIndex(), first, first + len(entries) - 1)
        self._entries[first:first] = entries
        self.endInsertRows()

    def remove(self, entry: ClipEntry) -> None:
        row = self.row_of(entry)
        if row is not None:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._entries[row]
            self.endRemoveRows()

    def row_of(self, entry: ClipEntry) -> int | None:
        return next((row for row, item in enumerate(self._entries) if item is entry), None)

    def refresh(self, entry: ClipEntry | None) -> None:
        row = None if entry is None else self.row_of(entry)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index)

    def set_playing(self, entry: ClipEntry | None) -> None:
        previous, self.playing = self.playing, entry
        self.refresh(previous)
        self.refresh(entry)

    def siblings(self, entry: ClipEntry) -> list[ClipEntry]:
        """The variations generated with `entry` (same job), in variation order."""
        if entry.job_id is None:
            return [entry]
        batch = [item for item in self._entries if item.job_id == entry.job_id]
        return sorted(batch, key=lambda item: item.variation)


class ClipDelegate(QStyledItemDelegate):
    """Paints a row: thumbnail, name, length / seed line, prompt line; the name is edited in place."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(THUMBNAIL_WIDTH + 240, ROW_HEIGHT)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        entry: ClipEntry = index.data(ENTRY_ROLE)
        model: ResultsModel = index.model()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        playing = model.playing is entry
        painter.save()
        rect = option.rect
        painter.fillRect(rect, QColor(theme.SELECTION if selected else theme.FIELD))
        painter.setPen(QPen(QColor(theme.BORDER), 1))
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())

        thumb = QRectF(rect.left() + PADDING, rect.top() + 7, THUMBNAIL_WIDTH, rect.height() - 14)
        painter.fillRect(thumb, QColor("#101113"))
        colour = QColor(theme.ACCENT if playing else theme.WAVEFORM_SELECTED if selected else theme.WAVEFORM)
        paint_envelope(painter, thumb.adjusted(2, 2, -2, -2), entry.peaks, colour)
        if playing:
            painter.setPen(QPen(QColor(theme.ACCENT), 2))
            painter.drawRect(thumb.adjusted(1, 1, -1, -1))

        text_left = int(thumb.right()) + PADDING + 2
        text_rect = QRect(text_left, rect.top() + 6, rect.right() - text_left - PADDING, rect.height() - 12)
        base = QFont(option.font)
        bold = QFont(base)
        bold.setBold(True)
        line = QFontMetrics(base).height()

        badge = ("▶ " if playing else "") + ("★" if entry.kept else "")
        badge_width = QFontMetrics(bold).horizontalAdvance(badge) + (6 if badge else 0)
        painter.setFont(bold)
        painter.setPen(QColor(theme.TEXT))
        name_rect = QRect(text_rect.left(), text_rect.top(), text_rect.width() - badge_width, line)
        painter.drawText(name_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         QFontMetrics(bold).elidedText(entry.name, Qt.TextElideMode.ElideRight, name_rect.width()))
        if badge:
            painter.setPen(QColor(theme.ACCENT))
            painter.drawText(QRect(name_rect.right(), text_rect.top(), badge_width, line),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, badge)

        painter.setFont(base)
        painter.setPen(QColor(theme.TEXT))
        details = f"{describe_length(entry)}  ·  seed {entry.seed}"
        painter.drawText(QRect(text_rect.left(), text_rect.top() + line + 2, text_rect.width(), line),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, details)
        painter.setPen(QColor(theme.MUTED))
        prompt = _prompt_line(entry)
        painter.drawText(QRect(text_rect.left(), text_rect.top() + 2 * line + 4, text_rect.width(), line),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         QFontMetrics(base).elidedText(prompt, Qt.TextElideMode.ElideRight, text_rect.width()))
        painter.restore()

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        left = option.rect.left() + PADDING + THUMBNAIL_WIDTH + PADDING
        height = QFontMetrics(option.font).height() + 8
        editor.setGeometry(QRect(left, option.rect.top() + 2, option.rect.right() - left - PADDING, height))


def _prompt_line(entry: ClipEntry) -> str:
    source = f"continues {entry.continues.name}" if entry.continues else ""
    prompt = f"“{entry.prompt}”" if entry.prompt else ""
    return "  ·  ".join(part for part in (source, prompt) if part) or entry.path.name


class ResultsView(QListView):
    """Single selection; click auditions; dragging a row drags its WAV file out of the window."""

    drag_started = pyqtSignal(object)  # the QDrag, just before it runs
    # Single-key commands while the list has focus (not while a name is being edited).
    key_commands = {Qt.Key.Key_K: "keep", Qt.Key.Key_Delete: "discard", Qt.Key.Key_Backspace: "discard",
                    Qt.Key.Key_Space: "audition", Qt.Key.Key_Tab: "switch"}
    command = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setItemDelegate(ClipDelegate(self))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.setUniformItemSizes(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.model() is not None and self.model().rowCount() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(QColor(theme.MUTED))
            painter.drawText(self.viewport().rect().adjusted(20, 0, -20, 0),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, EMPTY_TEXT)
            painter.end()

    def selected_entry(self) -> ClipEntry | None:
        indexes = self.selectionModel().selectedIndexes() if self.selectionModel() else []
        return indexes[0].data(ENTRY_ROLE) if indexes else None

    def select_entry(self, entry: ClipEntry) -> None:
        row = self.model().row_of(entry)
        if row is not None:
            self.setCurrentIndex(self.model().index(row))

    def keyPressEvent(self, event) -> None:
        command = self.key_commands.get(Qt.Key(event.key()))
        if command and not event.modifiers() and self.state() != QAbstractItemView.State.EditingState:
            self.command.emit(command)
            event.accept()
            return
        super().keyPressEvent(event)

    def startDrag(self, supported_actions: Qt.DropAction) -> None:
        indexes = self.selectedIndexes()
        entries = [index.data(ENTRY_ROLE) for index in indexes]
        entries = [entry for entry in entries if entry is not None and entry.path.is_file()]
        if not entries:
            return
        drag = QDrag(self)
        drag.setMimeData(clip_mime_data([entry.path for entry in entries]))
        drag.setPixmap(self._drag_pixmap(indexes[0]))
        self.drag_started.emit(drag)
        drag.exec(Qt.DropAction.CopyAction, Qt.DropAction.CopyAction)

    def _drag_pixmap(self, index: QModelIndex) -> QPixmap:
        pixmap = QPixmap(THUMBNAIL_WIDTH, 40)
        pixmap.fill(QColor("#101113"))
        painter = QPainter(pixmap)
        entry: ClipEntry = index.data(ENTRY_ROLE)
        paint_envelope(painter, QRectF(2, 2, THUMBNAIL_WIDTH - 4, 36), entry.peaks, QColor(theme.ACCENT))
        painter.end()
        return pixmap

"""The layers panel: the study view's layers, top of the stack first, with their controls.

Each row has a visibility check box and the layer's name (and kind). The selected layer's
opacity and colour map (image and heatmap layers) are edited below the list; non-base layers can
be removed. Every edit goes to the Qt-free model (:class:`~workstation.render.StudyView` and its
layers) and the panel follows the model's events, so a layer added by inference, a plugin or a
menu action appears here the same way.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from workstation.render import COLORMAPS, HeatmapLayer, ImageLayer, LabelsLayer, Layer, StudyView

__all__ = ["LayerPanel"]

_KIND = {ImageLayer: "image", LabelsLayer: "labels", HeatmapLayer: "heatmap"}


def _kind(layer: Layer) -> str:
    return next((name for cls, name in _KIND.items() if isinstance(layer, cls)), "layer")


class LayerPanel(QWidget):
    """Lists and edits the layers of ``study_view``."""

    def __init__(self, study_view: StudyView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.study_view = study_view
        self.list = QListWidget()
        self.list.itemChanged.connect(self._item_changed)
        self.list.currentRowChanged.connect(self._row_selected)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.valueChanged.connect(self._opacity_edited)
        self.colormap = QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.colormap.currentTextChanged.connect(self._colormap_edited)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self._remove_selected)

        form = QFormLayout()
        form.addRow("Opacity", self.opacity)
        form.addRow("Colours", self.colormap)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.remove_button)
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        box.addWidget(self.list, 1)
        box.addLayout(form)
        box.addLayout(buttons)

        events = study_view.events
        self._observed = [
            (events.inserted, self._rebuild),
            (events.removed, self._rebuild),
            (events.moved, self._rebuild),
            (events.changed, self._layer_changed),
            (events.selection, self._selection_changed),
        ]
        for event, callback in self._observed:
            event.connect(callback)
        self._updating = False
        self._rebuild()

    def detach(self) -> None:
        """Stop observing the model."""
        for event, callback in self._observed:
            event.disconnect(callback)
        self._observed = []

    # -- model -> panel -------------------------------------------------------------------------
    def _layers_top_first(self) -> list[Layer]:
        return list(reversed(self.study_view.layers))

    def _rebuild(self, *_: Any) -> None:
        self._updating = True
        try:
            self.list.clear()
            for layer in self._layers_top_first():
                item = QListWidgetItem(f"{layer.name}  ({_kind(layer)})")
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(
                    Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked
                )
                self.list.addItem(item)
        finally:
            self._updating = False
        selected = self.study_view.selected
        if selected is None and len(self.study_view):
            self.study_view.selected = self.study_view.layers[-1]
        else:
            self._selection_changed(selected)

    def _layer_changed(self, layer: Layer, field_name: str) -> None:
        if field_name in ("visible", "name"):
            self._rebuild()
        elif layer is self.study_view.selected and field_name in ("opacity", "colormap"):
            self._selection_changed(layer)

    def _selection_changed(self, layer: Layer | None) -> None:
        self._updating = True
        try:
            layers = self._layers_top_first()
            row = layers.index(layer) if layer in layers else -1
            self.list.setCurrentRow(row)
            enabled = layer is not None
            self.opacity.setEnabled(enabled)
            self.opacity.setValue(round(layer.opacity * 100) if layer is not None else 0)
            has_colormap = isinstance(layer, ImageLayer | HeatmapLayer)
            self.colormap.setEnabled(has_colormap)
            if has_colormap:
                self.colormap.setCurrentText(layer.colormap)  # type: ignore[union-attr]
            self.remove_button.setEnabled(enabled and layer is not self.study_view.base)
        finally:
            self._updating = False

    # -- panel -> model -------------------------------------------------------------------------
    @Slot(QListWidgetItem)
    def _item_changed(self, item: QListWidgetItem) -> None:
        if self._updating:
            return
        layer = self._layers_top_first()[self.list.row(item)]
        layer.visible = item.checkState() == Qt.CheckState.Checked

    @Slot(int)
    def _row_selected(self, row: int) -> None:
        if self._updating or row < 0:
            return
        self.study_view.selected = self._layers_top_first()[row]

    @Slot(int)
    def _opacity_edited(self, value: int) -> None:
        layer = self.study_view.selected
        if not self._updating and layer is not None:
            layer.opacity = value / 100.0

    @Slot(str)
    def _colormap_edited(self, name: str) -> None:
        layer = self.study_view.selected
        if not self._updating and isinstance(layer, ImageLayer | HeatmapLayer):
            layer.colormap = name

    @Slot()
    def _remove_selected(self) -> None:
        layer = self.study_view.selected
        if layer is not None and layer is not self.study_view.base:
            self.study_view.remove(layer)

"""The Analyze panel: run a verified model on the loaded volume and show what it found.

The model list comes from :func:`~workstation.inference.catalogue.find_models` (bundles are
verified, on a worker). Running calls :func:`~workstation.workflow.analyze.analyze` in a
:class:`~workstation.ui.tasks.TaskRunner` (torch is imported there, never on the GUI thread); a
new run cancels the one before. The result lands in the study view as layers (the explanation
as a heatmap, the findings as labels: both drawn in 2D and, as surfaces, in 3D), replacing the
previous run's layers of the same model; the findings list moves the crosshair to a finding's
centroid. The analysis is then saved to the encrypted result store on another worker; a
failure to save is shown ("not saved: ..."), never raised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from workstation.core.errors import WorkstationError
from workstation.render import HeatmapLayer, LabelsLayer, Layer, StudyView
from workstation.ui.analyze_tasks import (
    DISCLAIMER,
    find_models_task,
    run_analysis_task,
    save_task,
    tooltip,
)
from workstation.ui.findings_list import METHOD_TITLES, FindingsList, details_html, warnings_text
from workstation.ui.tasks import TaskRunner

if TYPE_CHECKING:
    from workstation.inference.catalogue import ModelInfo
    from workstation.workflow.analyze import Analysis, AnalysisRequest

__all__ = ["AnalyzePanel"]

EXPLAIN_CHOICES: tuple[tuple[str, str | None], ...] = (
    *((title, method) for method, title in METHOD_TITLES.items()),
    ("None", None),
)
HEATMAP_OPACITY = 0.5
LABELS_OPACITY = 0.35  # the heatmap and the anatomy stay visible under the findings
HEATMAP_THRESHOLD = 0.25  # share of the map's range below which it is not drawn
WARNING_STYLE = "color: #e07000; font-weight: bold;"


class AnalyzePanel(QWidget):
    """Choose a model and an explanation, run them, browse the findings.

    ``is_busy()`` says whether the base volume is still loading (Run waits until it is not);
    the owner calls :meth:`refresh` when a load finishes. :meth:`run_model` runs a named model
    as soon as the models are listed and a volume is loaded (``workstation open --analyze``).
    """

    shown = Signal(object)  # the Analysis, once its layers are in the study view
    stopped = Signal(str)  # a run failed or was cancelled: why

    def __init__(
        self, study_view: StudyView, parent: QWidget | None = None, *, is_busy: Any = None
    ) -> None:
        super().__init__(parent)
        self.study_view = study_view
        self._is_busy = is_busy or (lambda: False)
        self.models: list[ModelInfo] = []
        self._loaded: dict[str, Any] = {}  # verified LoadedModels, reused between runs
        self._layers: dict[str, list[Layer]] = {}  # model name → the layers of its last run
        self.analysis: Analysis | None = None
        self._request: AnalysisRequest | None = None
        self._volume: Any = None
        self._pending: str | None = None

        self.model_combo = QComboBox()
        self.model_combo.setPlaceholderText("finding models…")
        self.model_combo.currentIndexChanged.connect(self._model_chosen)
        self.explain_combo = QComboBox()
        for title, method in EXPLAIN_CHOICES:
            self.explain_combo.addItem(title, method)
        self.confirm = QCheckBox("Confirm with classifier")
        self.confirm.setEnabled(False)
        self.disclaimer = QLabel(f"⚠ {DISCLAIMER}")
        self.disclaimer.setWordWrap(True)
        self.disclaimer.setStyleSheet(WARNING_STYLE)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.findings = FindingsList()
        self.findings.finding_chosen.connect(self._go_to)
        self.warnings = QLabel("")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet(WARNING_STYLE)
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.save_status = QLabel("")
        self.save_status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Model", self.model_combo)
        form.addRow("Explanation", self.explain_combo)
        form.addRow("", self.confirm)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.disclaimer)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.findings, 1)
        layout.addWidget(self.warnings)
        layout.addWidget(self.details)
        layout.addWidget(self.save_status)

        self.models_runner = TaskRunner(self, threads=1)
        self.models_runner.finished.connect(self._models_found)
        self.models_runner.failed.connect(lambda m, _d: self.status.setText(f"no models: {m}"))
        self.runner = TaskRunner(self, threads=1)
        self.runner.progress.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.save_runner = TaskRunner(self, threads=1)
        self.save_runner.finished.connect(self._on_saved)
        self.save_runner.failed.connect(lambda m, _d: self.save_status.setText(f"not saved: {m}"))
        self._events = (
            (study_view.events.inserted, self._layers_changed),
            (study_view.events.removed, self._layers_changed),
        )
        for event, callback in self._events:
            event.connect(callback)
        self._show_running(False)
        self.models_runner.start(find_models_task)

    # -- models -------------------------------------------------------------------------------
    @Slot(object)
    def _models_found(self, models: object) -> None:
        found, refused = models  # type: ignore[misc]
        self.models = list(found)
        if refused:
            reasons = "\n".join(f"{path}: {why}" for path, why in refused)
            self.status.setText(f"{len(refused)} model bundle(s) refused")
            self.status.setToolTip(reasons)
        self.model_combo.clear()
        for info in self.models:
            self.model_combo.addItem(f"{info.name} {info.version}", info.name)
            self.model_combo.setItemData(
                self.model_combo.count() - 1, tooltip(info), Qt.ItemDataRole.ToolTipRole
            )
        if self.models:
            tasks = [info.task for info in self.models]
            first = tasks.index("segmentation") if "segmentation" in tasks else 0
            self.model_combo.setCurrentIndex(first)
        else:
            self.status.setText("no verified model bundle found")
        self.refresh()

    def model_info(self) -> ModelInfo | None:
        """The chosen model."""
        index = self.model_combo.currentIndex()
        return self.models[index] if 0 <= index < len(self.models) else None

    def _classifier(self) -> ModelInfo | None:
        return next((m for m in self.models if m.task == "classification"), None)

    @Slot(int)
    def _model_chosen(self, _index: int) -> None:
        info = self.model_info()
        can_confirm = (
            info is not None and info.task == "segmentation" and self._classifier() is not None
        )
        self.confirm.setEnabled(can_confirm)
        self.confirm.setChecked(can_confirm)
        if info is not None:
            self.model_combo.setToolTip(tooltip(info))
            self.disclaimer.setText(f"⚠ {info.disclaimer or DISCLAIMER}")
        self.refresh()

    def request(self) -> AnalysisRequest | None:
        """What Run would run (``None``: no model)."""
        info = self.model_info()
        if info is None:
            return None
        from workstation.workflow.analyze import AnalysisRequest

        classifier = self._classifier()
        confirm = (
            classifier.name
            if classifier and self.confirm.isEnabled() and self.confirm.isChecked()
            else None
        )
        return AnalysisRequest(
            model=info.name, explain=self.explain_combo.currentData(), confirm_with=confirm
        )

    # -- running ------------------------------------------------------------------------------
    def can_run(self) -> bool:
        return (
            self.model_info() is not None
            and self.study_view.base is not None
            and not self._is_busy()
        )

    @Slot()
    def refresh(self) -> None:
        """Enable Run when a model is chosen and a volume is loaded."""
        self.run_button.setEnabled(self.can_run())
        if self._pending is not None and self.models and self.can_run():
            index = self.model_combo.findData(self._pending)
            self._pending = None
            if index < 0:
                self.stopped.emit("no such model")
                return
            self.model_combo.setCurrentIndex(index)
            self.run()

    def run_model(self, name: str) -> None:
        """Run the model ``name`` once it is listed and a volume is loaded."""
        self._pending = name
        self.refresh()

    def _layers_changed(self, index: int, _layer: Layer) -> None:
        if index == 0:  # a new base volume: the previous results belong to another one
            self.runner.cancel()
            self._clear_results()
            self._layers.clear()
        self.refresh()

    @Slot()
    def run(self) -> None:
        """Analyse the base volume with the chosen model (a run in progress is cancelled)."""
        request = self.request()
        base = self.study_view.base
        if request is None or base is None or not self.can_run():
            return
        self._request, self._volume = request, base.volume
        self._clear_results()
        self._show_running(True)
        self.progress.setRange(0, 0)
        self.status.setText(f"running {request.model}…")
        volume, cache = base.volume, dict(self._loaded)
        self.runner.start(
            lambda *, progress, cancel: run_analysis_task(
                volume, request, cache, progress=progress, cancel=cancel
            )
        )

    @Slot()
    def cancel(self) -> None:
        """Stop the run in progress (it reports "cancelled" once the worker stops)."""
        if self.runner.busy:
            self.status.setText("cancelling…")
            self.runner.cancel()

    def _show_running(self, on: bool) -> None:
        self.progress.setVisible(on)
        self.cancel_button.setEnabled(on)

    @Slot(int, int, str)
    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.progress.setRange(0, max(total, 0))
        self.progress.setValue(done)
        self.status.setText(message)

    @Slot(object)
    def _on_finished(self, result: object) -> None:
        self._show_running(False)
        analysis, models = result  # type: ignore[misc]
        self._loaded.update(models)
        base = self.study_view.base
        if base is None or base.volume is not self._volume:
            self.status.setText("the volume changed: result discarded")
            return
        self.analysis = analysis
        try:
            self._add_layers(analysis)
        except (WorkstationError, ValueError) as error:
            self.status.setText(f"cannot show the result: {error}")
            return
        self._show_analysis(analysis)
        self.shown.emit(analysis)
        self.save_status.setText("saving to the encrypted store…")
        self.save_runner.start(
            lambda *, progress, cancel: save_task(analysis, progress=progress, cancel=cancel)
        )

    @Slot(str, str)
    def _on_failed(self, message: str, _details: str) -> None:
        self._show_running(False)
        self.status.setText(f"failed: {message}")
        self.stopped.emit(message)

    @Slot()
    def _on_cancelled(self) -> None:
        self._show_running(False)
        self.status.setText("cancelled")
        self.stopped.emit("cancelled")

    @Slot(object)
    def _on_saved(self, result: object) -> None:
        saved, text = result  # type: ignore[misc]
        if saved:
            self.save_status.setText(f"saved to the encrypted store as {text}")
        else:
            self.save_status.setText(f"not saved: {text}")

    # -- results ------------------------------------------------------------------------------
    def _add_layers(self, analysis: Analysis) -> None:
        name = str(analysis.model.get("name", self._request.model if self._request else "model"))
        for old in self._layers.pop(name, []):
            if old in self.study_view:
                self.study_view.remove(old)
        added: list[Layer] = []
        info = analysis.explanation_info or {}
        if analysis.explanation is not None:
            method = str(info.get("method", ""))
            title = METHOD_TITLES.get(method, method or "Explanation")
            heatmap = HeatmapLayer(
                analysis.explanation,
                colormap="inferno",
                name=f"{title} ({name})",
                opacity=HEATMAP_OPACITY,
            )
            low, high = heatmap.range
            heatmap.threshold = low + HEATMAP_THRESHOLD * (high - low)
            added.append(heatmap)
        if analysis.labels is not None:
            label_names = {f.label: f.name for f in analysis.findings if f.label}
            added.append(
                LabelsLayer(
                    analysis.labels,
                    label_names=label_names,
                    name=f"Findings ({name})",
                    opacity=LABELS_OPACITY,
                )
            )
        for layer in added:
            self.study_view.add(layer)
        self._layers[name] = added

    def _show_analysis(self, analysis: Analysis) -> None:
        n = len(analysis.findings)
        self.status.setText(f"done: {n} finding{'s' if n != 1 else ''}")
        self.findings.set_findings(analysis.findings)
        self.warnings.setText(warnings_text(analysis))
        self.details.setText(details_html(analysis))

    def _clear_results(self) -> None:
        self.analysis = None
        self.findings.set_findings(())
        for label in (self.warnings, self.details, self.save_status):
            label.setText("")

    @Slot(object)
    def _go_to(self, centroid: object) -> None:
        if centroid is not None and self.study_view.base is not None:
            self.study_view.cursor_lps = centroid

    def shutdown(self) -> None:
        """Cancel the workers and wait for them (when the window closes)."""
        for event, callback in self._events:
            event.disconnect(callback)
        for runner in (self.runner, self.models_runner, self.save_runner):
            runner.shutdown()

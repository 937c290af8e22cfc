"""View3D on a display (xcb under Xvfb): volume rendering, crop to crosshair, surfaces, quality.

The volumes are small (the marker series is 48 x 40 x 16) because rendering is software
OpenGL here. Worker results are awaited with ``qtbot.waitSignal`` (an event loop that lets the
worker thread run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from workstation.core.volume import Volume
from workstation.dicom import load_series
from workstation.render.layers import HeatmapLayer, ImageLayer, LabelsLayer
from workstation.render.scene3d import QUALITY, crosshair_crop
from workstation.render.study_view import StudyView
from workstation.ui.view3d import View3D, View3DError

pytestmark = pytest.mark.usefixtures("display")

WORKER_TIMEOUT_MS = 60_000
BRIGHT = 150  # R + G + B of the marker as the "CT bone" preset draws it (about 310 at its core)


@pytest.fixture
def marker(marker_series: Any) -> tuple[Volume, np.ndarray]:
    """The marker volume (zeros and a bright 3x3x3 cube) and the cube's LPS centre."""
    return load_series(marker_series.folder), np.asarray(marker_series.marker_lps)


def _shown(qtbot: QtBot, study: StudyView, size: tuple[int, int] = (420, 380)) -> View3D:
    """A View3D of ``study``, shown, its volume drawn (the first frame rendered)."""
    widget = View3D(study)
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    qtbot.waitExposed(widget)
    with qtbot.waitSignal(widget.scene_ready, timeout=WORKER_TIMEOUT_MS):
        widget.refresh_volume()
    return widget


@pytest.fixture
def view(qtbot: QtBot, marker: tuple[Volume, np.ndarray]) -> View3D:
    widget = _shown(qtbot, StudyView([ImageLayer(marker[0], name="marker")]))
    widget.set_preset("CT bone")  # the marker's 1000 is bright bone (the MR preset is relative)
    return widget


def _luma(frame: np.ndarray) -> np.ndarray:
    return frame.astype(int).sum(axis=-1)


def _pixel(view: View3D, lps: Any, height: int) -> tuple[int, int]:
    """Row and column of the frame pixel where the renderer projects an LPS point."""
    renderer = view.renderer
    renderer.SetWorldPoint(*np.asarray(lps, float), 1.0)
    renderer.WorldToDisplay()
    x, y, _ = renderer.GetDisplayPoint()
    return height - 1 - round(y), round(x)


def _near(frame: np.ndarray, pixel: tuple[int, int], radius: int = 2) -> int:
    row, col = pixel
    return int(_luma(frame)[row - radius : row + radius + 1, col - radius : col + radius + 1].max())


def test_volume_renders_the_marker_where_the_renderer_projects_it(
    view: View3D, marker: tuple[Volume, np.ndarray]
) -> None:
    marker_lps = marker[1]
    assert view.preset == "CT bone" and view.presets.currentText() == "CT bone"
    assert view.interactor is not None and not view.waiting
    frame = view.frame()
    luma = _luma(frame)
    assert luma.max() > BRIGHT  # not blank
    pixel = _pixel(view, marker_lps, frame.shape[0])
    assert _near(frame, pixel) > BRIGHT
    # The marker is the only bright thing: the bright pixels surround its projection.
    bright = np.argwhere(luma > 0.5 * luma.max())
    np.testing.assert_allclose(bright.mean(axis=0), pixel, atol=4)
    # Far from it, black.
    assert _near(frame, (10, 10)) == 0


def test_the_default_preset_follows_the_modality(
    qtbot: QtBot, marker: tuple[Volume, np.ndarray]
) -> None:
    volume = marker[0]
    ct = Volume(volume.array.astype(np.int16), metadata={"modality": "CT"})
    study = StudyView([ImageLayer(volume)])
    widget = _shown(qtbot, study)
    assert widget.preset == "MR brain"
    study.clear()
    study.add(ImageLayer(ct))
    widget.refresh_volume()
    assert widget.preset == "CT bone" and widget.volume_prop.preset == "CT bone"
    widget.presets.setCurrentText("CT skin")  # the toolbar writes through
    assert widget.preset == "CT skin" and widget.volume_prop.preset == "CT skin"
    with pytest.raises(ValueError, match="unknown preset"):
        widget.set_preset("PET")


def test_clip_follows_the_cursor_without_rebuilding_the_volume(
    view: View3D, marker: tuple[Volume, np.ndarray]
) -> None:
    volume, marker_lps = marker
    study = view.study_view
    prop = view.volume_prop
    actor, mapper = prop.actor, prop.mapper
    frame = view.frame()
    pixel = _pixel(view, marker_lps, frame.shape[0])
    assert _near(frame, pixel) > BRIGHT

    view.set_clip_to_crosshair(True)
    assert view.clip_action.isChecked() and mapper.GetCropping()
    cut = view.crop().cut
    before = mapper.GetCroppingRegionPlanes()
    # Put the cursor 3 voxels from the marker on the kept side: the marker is in the cut octant.
    marker_ijk = np.rint(volume.lps_to_index(marker_lps))
    cursor = volume.index_to_lps(marker_ijk - 3 * np.asarray(cut))
    study.cursor_lps = cursor
    after = mapper.GetCroppingRegionPlanes()
    assert after != before
    np.testing.assert_allclose(after, crosshair_crop(volume, cursor, cut).region_planes)
    assert view.volume_prop is prop and prop.actor is actor and prop.mapper is mapper
    assert _near(view.frame(), pixel) < 30  # cut away

    # The other way round, the marker is kept.
    study.cursor_lps = volume.index_to_lps(marker_ijk + 3 * np.asarray(cut))
    assert _near(view.frame(), pixel) > BRIGHT
    view.clip_action.trigger()  # the toolbar turns it off
    assert not view.clip_to_crosshair and not mapper.GetCropping() and view.crop() is None
    assert view.volume_prop is prop


def test_label_layers_become_surfaces_that_follow_the_layer(
    view: View3D, qtbot: QtBot, marker: tuple[Volume, np.ndarray]
) -> None:
    volume = marker[0]
    study, renderer = view.study_view, view.renderer
    labels = np.zeros(volume.shape, np.uint8)
    labels[2:8, 5:20, 4:20] = 1
    labels[9:15, 22:36, 26:44] = 2
    layer = LabelsLayer(volume.with_array(labels), colors={1: (255, 0, 0, 255)}, opacity=0.8)
    actor = view.volume_prop.actor
    with qtbot.waitSignal(view.surfaces_ready, timeout=WORKER_TIMEOUT_MS) as ready:
        study.add(layer)
    assert ready.args == [layer]
    props = view.surface_props(layer)
    assert [p.label for p in props] == [1, 2]
    assert props[0].actor.GetProperty().GetColor() == pytest.approx((1.0, 0.0, 0.0))
    expected = np.asarray(layer.color(2)[:3]) / 255
    assert props[1].actor.GetProperty().GetColor() == pytest.approx(tuple(expected))
    assert all(renderer.HasViewProp(p.actor) and p.visible for p in props)
    assert all(p.actor.GetProperty().GetOpacity() == pytest.approx(0.8) for p in props)
    assert view.volume_prop.actor is actor  # the volume stays

    layer.visible = False
    assert not any(p.visible for p in props)
    layer.visible = True
    layer.opacity = 0.9
    assert all(
        p.visible and p.actor.GetProperty().GetOpacity() == pytest.approx(0.9) for p in props
    )
    layer.opacity = 0.3  # a light 2D fill stays visible inside the volume in 3D
    assert all(p.actor.GetProperty().GetOpacity() == pytest.approx(0.8) for p in props)
    layer.opacity = 0.0
    assert all(p.actor.GetProperty().GetOpacity() == 0.0 for p in props)
    layer.colors = {1: (0, 0, 255, 255)}
    assert props[0].actor.GetProperty().GetColor() == pytest.approx((0.0, 0.0, 1.0))
    view.set_clip_to_crosshair(True)
    assert all(p.crop is not None for p in props)

    study.remove(layer)
    assert view.surface_props(layer) == []
    assert not any(renderer.HasViewProp(p.actor) for p in props)


def test_a_heatmap_layer_becomes_a_translucent_iso_surface(
    view: View3D, qtbot: QtBot, marker: tuple[Volume, np.ndarray]
) -> None:
    volume = marker[0]
    k, j, i = np.indices(volume.shape)
    blob = np.exp(-((i - 20.0) ** 2 + (j - 20.0) ** 2) / 50.0 - (k - 8.0) ** 2 / 8.0)
    layer = HeatmapLayer(volume.with_array(blob.astype(np.float32)), threshold=0.5)
    with qtbot.waitSignal(view.surfaces_ready, timeout=WORKER_TIMEOUT_MS):
        view.study_view.add(layer)
    (prop,) = view.surface_props(layer)
    assert 0.0 < prop.actor.GetProperty().GetOpacity() < 1.0
    centre = volume.index_to_lps((20.0, 20.0, 8.0))
    np.testing.assert_allclose(np.reshape(prop.mesh.bounds, (3, 2)).mean(axis=1), centre, atol=1.0)
    with qtbot.waitSignal(view.surfaces_ready, timeout=WORKER_TIMEOUT_MS):
        layer.threshold = 0.9  # a new level: a new, smaller surface
    (smaller,) = view.surface_props(layer)
    assert smaller is not prop and smaller.mesh.length < prop.mesh.length
    assert not view.renderer.HasViewProp(prop.actor)


def test_quality_drops_while_interacting(view: View3D) -> None:
    prop = view.volume_prop
    style = view.interactor.iren.interactor.GetInteractorStyle()
    still, interactive = QUALITY["still"], QUALITY["interactive"]
    assert prop.quality == "still"
    assert prop.mapper.GetImageSampleDistance() == pytest.approx(still.image_sample_distance)
    style.InvokeEvent("StartInteractionEvent")
    assert prop.quality == "interactive"
    assert prop.mapper.GetImageSampleDistance() == pytest.approx(interactive.image_sample_distance)
    assert prop.mapper.GetSampleDistance() > still.sample_distance * min(prop.volume.spacing)
    style.InvokeEvent("EndInteractionEvent")
    assert prop.quality == "still"
    assert prop.mapper.GetImageSampleDistance() == pytest.approx(still.image_sample_distance)


def test_a_mouse_drag_renders_at_interactive_quality(view: View3D, qtbot: QtBot) -> None:
    from PySide6.QtCore import QPoint, Qt

    prop, interactor = view.volume_prop, view.interactor
    seen: list[str] = []
    tag = view.renderer.AddObserver("StartEvent", lambda *_: seen.append(prop.quality))
    try:
        centre = interactor.rect().center()
        qtbot.mousePress(interactor, Qt.MouseButton.LeftButton, pos=centre)
        for step in range(1, 4):
            qtbot.mouseMove(interactor, centre + QPoint(12 * step, 5 * step))
            qtbot.wait(10)
        qtbot.mouseRelease(interactor, Qt.MouseButton.LeftButton, pos=centre + QPoint(36, 15))
        view.frame()
    finally:
        view.renderer.RemoveObserver(tag)
    assert "interactive" in seen
    assert seen[-1] == "still" and prop.quality == "still"


def test_the_toolbar_resets_the_camera(view: View3D) -> None:
    camera = view.renderer.GetActiveCamera()
    default = camera.GetPosition()
    camera.Azimuth(40.0)
    assert not np.allclose(camera.GetPosition(), default)
    view.toolbar.reset_action.trigger()
    np.testing.assert_allclose(camera.GetPosition(), default)


def test_save_screenshot_writes_a_non_blank_png(view: View3D, tmp_path: Path) -> None:
    path = view.save_screenshot(tmp_path / "view3d.png")
    image = QImage(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not image.isNull() and image.width() > 100
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    buffer = np.frombuffer(rgb.constBits(), np.uint8, rgb.sizeInBytes())
    assert buffer.max() > BRIGHT // 3  # one channel


def test_waits_for_refresh_and_rebuilds_only_for_a_new_volume(
    qtbot: QtBot, marker: tuple[Volume, np.ndarray]
) -> None:
    volume = marker[0]
    study = StudyView()
    widget = View3D(study)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    assert widget.waiting and widget.message.isVisible() and "waiting" in widget.message.text()
    with pytest.raises(View3DError):
        widget.save_screenshot("never.png")

    study.add(ImageLayer(volume))  # a load adds its blank volume first, then fills it in place
    assert widget.waiting and widget.volume_prop is None and widget.message.isVisible()
    with qtbot.waitSignal(widget.scene_ready, timeout=WORKER_TIMEOUT_MS):
        widget.refresh_volume()  # the load finished
    prop = widget.volume_prop
    assert prop is not None and prop.volume is volume and not widget.message.isVisible()

    with qtbot.waitSignal(widget.scene_ready, timeout=WORKER_TIMEOUT_MS):
        widget.refresh_volume()  # voxels changed in place: the same actor, uploaded again
    assert widget.volume_prop is prop

    other = volume.with_array(volume.array.copy())
    study.clear()
    study.add(ImageLayer(other))  # a new series: the old scene goes, the new one waits
    assert widget.waiting and widget.message.isVisible()
    assert not widget.renderer.HasViewProp(prop.actor)
    with qtbot.waitSignal(widget.scene_ready, timeout=WORKER_TIMEOUT_MS):
        widget.refresh_volume()
    assert widget.volume_prop.volume is other and widget.volume_prop.actor is not prop.actor


def test_brain_surface_is_built_on_a_worker_and_toggles(view: View3D, qtbot: QtBot) -> None:
    with qtbot.waitSignal(view.surfaces_ready, timeout=WORKER_TIMEOUT_MS) as ready:
        view.surface_action.trigger()
    assert ready.args == ["brain surface"] and view.surface_shown
    (prop,) = view.surface_props("brain surface")
    assert prop.visible and view.renderer.HasViewProp(prop.actor)
    view.show_surface(False)
    assert not prop.visible and not view.surface_action.isChecked()
    view.show_surface(True)  # already built: shown again without a worker
    assert view.surface_props("brain surface") == [prop] and prop.visible


def test_close_detaches_and_releases_the_interactor(
    qtbot: QtBot, marker: tuple[Volume, np.ndarray]
) -> None:
    import pyvista as pv

    study = StudyView([ImageLayer(marker[0])])
    with pv.VtkErrorCatcher(send_to_logging=False) as catcher:
        widget = _shown(qtbot, study)
        widget.set_clip_to_crosshair(True)
        widget.frame()
        interactor = widget.interactor
        widget.close()
    assert catcher.events == []
    assert widget.interactor is None and widget.volume_prop is None
    assert interactor.render_window is None or interactor._closed  # pyvista closed the plotter
    events = study.events
    for event in (events.inserted, events.removed, events.changed, events.cursor):
        assert not any(getattr(cb, "__self__", None) is widget for cb in event.callbacks)
    study.cursor_lps = (0.0, 0.0, 0.0)  # no error: nobody listens


def test_the_demo_brain_with_its_tissue_labels(qtbot: QtBot) -> None:
    from workstation.config import demo_study_path
    from workstation.render.tissue import TISSUE_COLORS, demo_tissue_labels

    brain = load_series(demo_study_path())
    widget = _shown(qtbot, StudyView([ImageLayer(brain, name="T1")]), (360, 320))
    study = widget.study_view
    assert widget.preset == "MR brain"
    volume_only = widget.frame()
    assert (_luma(volume_only) > 150).mean() > 0.05  # the brain fills a good part of the view
    layer = demo_tissue_labels(brain, opacity=1.0)
    with qtbot.waitSignal(widget.surfaces_ready, timeout=WORKER_TIMEOUT_MS):
        study.add(layer)
    props = widget.surface_props(layer)
    assert [p.label for p in props] == [1, 2, 3]
    for prop in props:
        expected = np.asarray(TISSUE_COLORS[prop.label][:3]) / 255
        assert prop.actor.GetProperty().GetColor() == pytest.approx(tuple(expected))
    # Opaque grey matter now covers the volume rendering: the view turns orange.
    with_labels = widget.frame().astype(int)
    orange = (with_labels[..., 0] > with_labels[..., 2] + 40).mean()
    assert orange > 0.05 and orange > 5 * (volume_only[..., 0] > volume_only[..., 2] + 40).mean()

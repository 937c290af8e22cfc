"""The evented layer model: events, validation, the study view's order, geometry, cursor."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from workstation.core.volume import Volume
from workstation.render.events import Event
from workstation.render.grid import GeometryMismatchError, check_same_grid
from workstation.render.layers import HeatmapLayer, ImageLayer, LabelsLayer
from workstation.render.study_view import StudyView
from workstation.render.windowing import Window


def _volume(dtype: type = np.int16, shape: tuple[int, int, int] = (4, 5, 6), **geometry) -> Volume:
    array = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    return Volume(array, spacing=(0.8, 0.8, 2.0), origin=(-10.0, 5.0, 30.0), **geometry)


class Recorder:
    """A callback that remembers its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, *args) -> None:
        self.calls.append(args)


# -- Event ------------------------------------------------------------------------------------
def test_event_calls_in_order_and_once() -> None:
    event, order = Event("e"), []
    event.connect(lambda x: order.append(("a", x)))
    second = event.connect(lambda x: order.append(("b", x)))
    event.connect(second)  # a second connect is a no-op
    event.emit(1)
    assert order == [("a", 1), ("b", 1)]


def test_disconnect_and_disconnect_during_emit() -> None:
    event, seen = Event("e"), []

    def first() -> None:
        seen.append("first")
        event.disconnect(second)  # removed while the emit runs: not called this time

    def second() -> None:
        seen.append("second")

    event.connect(first)
    event.connect(second)
    event.emit()
    assert seen == ["first"]
    event.disconnect(first)
    event.disconnect(first)  # unknown callbacks are ignored
    event.emit()
    assert seen == ["first"]
    assert event.callbacks == ()


def test_blocked_event_is_silent() -> None:
    event, rec = Event("e"), Recorder()
    event.connect(rec)
    with event.blocked():
        event.emit(1)
    event.emit(2)
    assert rec.calls == [(2,)]


# -- Layer attributes -------------------------------------------------------------------------
def test_changed_fires_once_per_actual_change() -> None:
    layer, rec = ImageLayer(_volume(), window=(50, 100), name="T1"), Recorder()
    layer.events.changed.connect(rec)
    layer.opacity = 0.5
    layer.opacity = 0.5
    layer.visible = False
    layer.visible = False
    layer.window = Window(60.0, 100.0)
    layer.window = (60.0, 100.0)
    layer.colormap = "inferno"
    layer.name = "T1 (bias-corrected)"
    assert rec.calls == [("opacity",), ("visible",), ("window",), ("colormap",), ("name",)]


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), float("inf")])
def test_opacity_is_validated(bad: float) -> None:
    layer = ImageLayer(_volume())
    with pytest.raises(ValueError, match="opacity"):
        layer.opacity = bad
    with pytest.raises(ValueError, match="opacity"):
        ImageLayer(_volume(), opacity=bad)
    assert layer.opacity == 1.0


def test_other_validation() -> None:
    with pytest.raises(ValueError, match="colormap"):
        ImageLayer(_volume(), colormap="jet")
    with pytest.raises(TypeError, match="integer"):
        LabelsLayer(_volume(np.float32))
    with pytest.raises(ValueError, match="RGBA"):
        LabelsLayer(_volume(np.uint8), colors={1: (255, 0, 0)})
    heat = HeatmapLayer(_volume(np.float32))
    assert heat.range == (0.0, 119.0)
    with pytest.raises(ValueError, match="low < high"):
        heat.range = (1.0, 1.0)
    with pytest.raises(ValueError, match="name"):
        heat.name = ""


def test_defaults_and_label_colours() -> None:
    volume = _volume()
    image = ImageLayer(volume.with_array(volume.array, metadata={"window": (40.0, 400.0)}))
    assert (image.window.center, image.window.width) == (40.0, 400.0)
    labels = LabelsLayer(_volume(np.uint8), label_names={1: "GM"}, colors={1: (1, 2, 3, 255)})
    assert labels.color(1) == (1, 2, 3, 255)
    assert labels.color(0)[3] == 0
    assert labels.color(7)[3] == 255


def test_volume_replacement_keeps_the_grid() -> None:
    layer, rec = HeatmapLayer(_volume(np.float32)), Recorder()
    layer.events.changed.connect(rec)
    layer.volume = layer.volume.with_array(np.zeros((4, 5, 6), np.float32))
    assert rec.calls == [("volume",)]
    with pytest.raises(GeometryMismatchError):
        layer.volume = _volume(np.float32, shape=(4, 5, 7))


# -- StudyView --------------------------------------------------------------------------------
def _view() -> tuple[StudyView, dict[str, Recorder]]:
    view = StudyView([ImageLayer(_volume(), name="T1")])
    recorders = {name: Recorder() for name in ("inserted", "removed", "moved", "changed")}
    for name, rec in recorders.items():
        getattr(view.events, name).connect(rec)
    return view, recorders


def test_add_remove_move_order_and_events() -> None:
    view, rec = _view()
    labels = view.add(LabelsLayer(_volume(np.uint8), name="labels"))
    heat = view.add(HeatmapLayer(_volume(np.float32), name="heat"))
    assert [layer.name for layer in view] == ["T1", "labels", "heat"]
    assert rec["inserted"].calls == [(1, labels), (2, heat)]
    assert view.selected is heat

    view.move("heat", 1)
    assert [layer.name for layer in view.layers] == ["T1", "heat", "labels"]
    assert rec["moved"].calls == [(2, 1, heat)]
    view.move(heat, 1)  # already there: no event
    assert len(rec["moved"].calls) == 1

    labels.opacity = 0.25
    assert rec["changed"].calls == [(labels, "opacity")]

    assert view.remove("heat") is heat
    assert rec["removed"].calls == [(1, heat)]
    assert view.selected is labels
    heat.opacity = 0.5  # no longer forwarded
    assert rec["changed"].calls == [(labels, "opacity")]
    assert heat.events.changed.callbacks == ()


def test_base_image_stays_at_the_bottom() -> None:
    view, _ = _view()
    view.add(LabelsLayer(_volume(np.uint8)))
    with pytest.raises(ValueError, match="base image"):
        view.move(1, 0)
    with pytest.raises(ValueError, match="base image"):
        view.remove(0)
    with pytest.raises(ValueError, match="base image"):
        view.add(LabelsLayer(_volume(np.uint8)), index=0)
    with pytest.raises(ValueError, match="already"):
        view.add(view[1])
    view.clear()
    assert len(view) == 0 and view.selected is None


def test_mismatched_geometry_is_refused_clearly() -> None:
    view, rec = _view()
    shifted = Volume(np.zeros((4, 5, 6), np.uint8), spacing=(0.8, 0.8, 2.0), origin=(-9.0, 5, 30))
    with pytest.raises(GeometryMismatchError) as info:
        view.add(LabelsLayer(shifted, name="atlas"))
    message = str(info.value)
    assert "'atlas'" in message and "'T1'" in message
    assert "origin (-9.0, 5.0, 30.0) vs (-10.0, 5.0, 30.0)" in message
    assert "resample" in message
    with pytest.raises(GeometryMismatchError, match=r"shape \[k, j, i\] \(4, 5, 7\)"):
        view.add(LabelsLayer(_volume(np.uint8, shape=(4, 5, 7))))
    tilted = np.array([[1, 0, 0], [0, 0.8, -0.6], [0, 0.6, 0.8]])
    with pytest.raises(GeometryMismatchError, match="direction"):
        view.add(LabelsLayer(_volume(np.uint8, direction=tilted)))
    assert len(view) == 1 and rec["inserted"].calls == []
    # Sub-micron differences (float round-off from a resampler) are the same grid.
    nudged = Volume(
        np.zeros((4, 5, 6), np.uint8), spacing=(0.8, 0.8, 2.0), origin=(-10.0 + 1e-5, 5.0, 30.0)
    )
    check_same_grid(nudged, view.base.volume)


def test_cursor_and_selection_events() -> None:
    view = StudyView()
    cursor, selection = Recorder(), Recorder()
    view.events.cursor.connect(cursor)
    view.events.selection.connect(selection)
    image = view.add(ImageLayer(_volume()))
    centre = (-10.0 + 0.8 * 2.5, 5.0 + 0.8 * 2, 30.0 + 2.0 * 1.5)
    assert view.cursor_lps == pytest.approx(centre)
    np.testing.assert_allclose(view.cursor_index(), [2.5, 2.0, 1.5])
    view.cursor_lps = np.array([1.0, 2.0, 3.0])
    view.cursor_lps = (1, 2, 3)  # the same point: no event
    assert [c[0] for c in cursor.calls][-1] == (1.0, 2.0, 3.0) and len(cursor.calls) == 2
    with pytest.raises(ValueError, match="three finite"):
        view.cursor_lps = (1.0, float("nan"), 0.0)
    assert selection.calls == [(image,)]
    view.selected = None
    with pytest.raises(ValueError, match="not in this view"):
        view.selected = ImageLayer(_volume())
    assert selection.calls == [(image,), (None,)]


def test_removed_layers_do_not_keep_the_view_alive() -> None:
    view = StudyView([ImageLayer(_volume())])
    extra = view.add(LabelsLayer(_volume(np.uint8)))
    view.clear()
    ref = weakref.ref(view)
    del view
    gc.collect()
    assert ref() is None
    assert extra.events.changed.callbacks == ()

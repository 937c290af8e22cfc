"""Gradient × input on tiny linear models, where it has a closed form."""

from __future__ import annotations

import numpy as np
import pytest
from workstation.plugins.api import Explainer

from mw_measure_example.explainer import GradientTimesInput

torch = pytest.importorskip("torch")


def test_satisfies_the_protocol():
    explainer = GradientTimesInput()
    assert isinstance(explainer, Explainer)
    assert explainer.title == "Gradient × input"


def test_conv3d_channel_target_is_weight_times_input():
    # A 1×1×1 convolution: out[c] = w[c]·x + b[c]. Channel 1 summed over voxels has gradient w[1]
    # at every voxel, so the attribution is w[1]·x.
    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 2, kernel_size=1).eval()
    x = torch.randn(1, 1, 3, 4, 5)
    seen = []
    result = GradientTimesInput().attribute(
        model, x, 1, progress=lambda d, t, m="": seen.append((d, t))
    )
    assert result.dtype == np.float32 and result.shape == (3, 4, 5)
    expected = float(model.weight.detach()[1, 0, 0, 0, 0]) * x[0, 0].numpy()
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
    assert seen[-1] == (1, 1)


def test_classifier_index_and_callable_target():
    # A linear classifier on the flattened volume: score_c = W[c]·x + b[c]; attribution W[c]·x.
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 4, 3)).eval()
    x = torch.randn(1, 1, 2, 3, 4)
    weight = model[1].weight.detach().numpy()
    expected = (weight[2].reshape(2, 3, 4) * x[0, 0].numpy()).astype(np.float32)

    by_index = GradientTimesInput().attribute(model, x, 2)
    by_callable = GradientTimesInput().attribute(model, x, lambda out: out[:, 2])
    np.testing.assert_allclose(by_index, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_callable, expected, rtol=1e-5, atol=1e-6)
    # Completeness for a linear model: the map sums to score(x) − score(0).
    with torch.no_grad():
        delta = model(x)[0, 2] - model(torch.zeros_like(x))[0, 2]
    assert by_index.sum() == pytest.approx(float(delta), rel=1e-4, abs=1e-5)


def test_cancel_and_bad_target():
    from workstation.core.errors import Cancelled
    from workstation.core.tasks import CancelToken

    model = torch.nn.Conv3d(1, 1, kernel_size=1).eval()
    x = torch.ones(1, 1, 2, 2, 2)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        GradientTimesInput().attribute(model, x, 0, cancel=token)
    with pytest.raises(ValueError):
        GradientTimesInput().attribute(model, x, 5)

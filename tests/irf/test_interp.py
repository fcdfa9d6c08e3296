"""The interpolation rule shared by all IRFs, on arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from gpcube.irf.interp import LOG_FLOOR, axis_weights, interp_nodes


def test_linear_function_is_reproduced_including_extrapolation():
    x = np.array([0.0, 1.0, 3.0])
    y = np.array([10.0, 20.0])
    values = 2 * x[:, None] + 5 * y[None, :] + 1
    rng = np.random.default_rng(0)
    px, py = rng.uniform(-0.5, 3.5, 100), rng.uniform(5.0, 25.0, 100)
    result = interp_nodes(values, [x, y], [px, py], edges=[(-0.5, 4.0), (5.0, 25.0)])
    np.testing.assert_allclose(result, 2 * px + 5 * py + 1)


def test_log_axis_is_linear_in_log():
    energy = np.array([1.0, 10.0, 100.0])
    values = np.log10(energy) * 3
    points = np.array([2.0, 31.6, 50.0])
    result = interp_nodes(values, [energy], [points], log_axes=[True])
    np.testing.assert_allclose(result, 3 * np.log10(points))


def test_outside_edges_and_nan_are_zero():
    nodes = np.array([1.0, 2.0, 3.0])
    result = interp_nodes(np.ones(3), [nodes], [np.array([0.4, 0.6, 3.4, 3.6, np.nan])], edges=[(0.5, 3.5)])
    np.testing.assert_allclose(result, [0, 1, 1, 0, 0], atol=1e-12)


def test_negative_extrapolation_is_clipped():
    result = interp_nodes(np.array([1.0, 0.0]), [np.array([0.0, 1.0])], [np.array([1.4])])
    assert result[0] == 0


def test_log_values_give_geometric_mean_and_keep_zero():
    nodes = np.array([0.0, 1.0, 2.0])
    values = np.array([1.0, 100.0, 0.0])
    result = interp_nodes(values, [nodes], [np.array([0.5, 1.5, 2.0])], log_values=True)
    assert result[0] == pytest.approx(10.0)
    # halfway to a zero node: the geometric mean with the floor (smallest float32 by default)
    assert result[1] == pytest.approx(np.sqrt(100.0 * LOG_FLOOR))
    assert result[2] == 0
    floored = interp_nodes(values, [nodes], [np.array([1.5])], log_values=True, log_floor=1e-6)
    assert floored[0] == pytest.approx(1e-2)


def test_single_node_axis_is_constant_within_its_bin():
    values = np.array([[1.0, 3.0]])
    result = interp_nodes(
        values,
        [np.array([5.0]), np.array([0.0, 1.0])],
        [np.array([4.5, 5.5, 7.0]), 0.5],
        edges=[(4, 6), (-1, 2)],
    )
    np.testing.assert_allclose(result, [2.0, 2.0, 0.0])


def test_broadcasting_keeps_shapes():
    values = np.arange(12.0).reshape(3, 4)
    result = interp_nodes(values, [np.arange(3.0), np.arange(4.0)], [np.arange(3.0)[:, None], np.arange(4.0)])
    np.testing.assert_array_equal(result, values)


def test_axis_weights_index_range():
    index, weight = axis_weights(np.array([0.0, 1.0, 2.0]), np.array([-1.0, 0.0, 1.5, 2.0, 9.0]))
    np.testing.assert_array_equal(index, [0, 0, 1, 1, 1])
    np.testing.assert_allclose(weight, [-1.0, 0.0, 0.5, 1.0, 8.0])

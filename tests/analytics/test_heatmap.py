"""Heat map grid (person-seconds per cell) and its picture."""

from __future__ import annotations

import numpy as np
import pytest

from vizoflow.analytics.heatmap import Heatmap, render


def test_each_frame_adds_the_time_since_the_last_to_each_persons_cell_at_most_max_step():
    heat = Heatmap((64, 48), cell=8, max_step=1.0)
    heat.add(0.0, np.array([[4.0, 4.0]]))  # the first frame has no time before it
    heat.add(0.5, np.array([[4.0, 4.0], [60.0, 44.0]]))
    heat.add(10.5, np.array([[4.0, 4.0]]))  # a 10 s stall counts 1 s
    assert heat.grid.shape == (6, 8)
    assert heat.grid[0, 0] == pytest.approx(1.5) and heat.grid[5, 7] == pytest.approx(0.5)
    assert heat.grid.sum() == pytest.approx(2.0)


def test_the_picture_is_the_frame_beside_the_heat_over_it():
    frame = np.full((48, 64, 3), 200, np.uint8)
    grid = np.zeros((6, 8))
    grid[2, 3] = 5.0
    picture = render(grid, frame, (64, 48))
    assert picture.shape == (48, 128, 3)
    assert (picture[:, :64] == frame).all()  # left: the frame as it is
    hot, cold = picture[2 * 8 + 4, 64 + 3 * 8 + 4], picture[40, 64 + 60]
    assert tuple(hot) != tuple(cold) and cold.max() < 100  # right: colour where people stood, dimmed elsewhere
    assert render(grid, None, (64, 48)).shape == (48, 128, 3)  # no frame (a replay): grey instead

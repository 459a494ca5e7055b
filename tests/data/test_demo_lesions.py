"""Tests of fusion_utils.data._demo_lesions: a measurable class signal in the lesion pictures."""

from __future__ import annotations

import numpy as np

from fusion_utils.data._demo_lesions import render_lesion
from fusion_utils.data._demo_tables import HAM_CLASSES


def test_lesion_colour_signal() -> None:
    bright, red = {}, {}
    for dx in HAM_CLASSES:
        b, r = [], []
        for i in range(3):
            img = np.asarray(render_lesion(dx, i, 100 + i), dtype=float)
            assert img.shape == (450, 600, 3)
            centre = img[195:255, 270:330]  # the lesion sits near the centre of the frame
            b.append(centre.mean())
            r.append((centre[..., 0] - centre[..., 2]).mean())
        bright[dx], red[dx] = np.mean(b), np.mean(r)
    assert min(bright, key=bright.get) == "mel"
    assert bright["nv"] < bright["bcc"] and bright["nv"] < bright["df"]
    assert max(red, key=red.get) == "vasc"
    # same lesion, same view -> same picture; another view -> a different picture
    a = np.asarray(render_lesion("nv", 5, 1))
    assert np.array_equal(a, np.asarray(render_lesion("nv", 5, 1)))
    assert not np.array_equal(a, np.asarray(render_lesion("nv", 5, 2)))

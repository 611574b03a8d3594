"""imageops' filters that stand in for SciPy on the serving path: the same answers, bit for bit,
as the SciPy calls they replace (SciPy is a training and test dependency, not a serving one)."""

from __future__ import annotations

import os

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from digitrec.vision import imageops as ops

FAST = settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 25)), deadline=None)


def image(seed: int, h: int, w: int, levels: int) -> np.ndarray:
    """float32 in [0, 1]; with levels > 0, only that many grey levels (ties everywhere)."""
    a = np.random.default_rng(seed).uniform(0, 1, (h, w)).astype(np.float32)
    return np.round(a * levels) / levels if levels else a


SHAPES = dict(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(1, 70),
    w=st.integers(1, 70),
    levels=st.sampled_from([0, 0, 1, 4]),
)


@FAST
@given(**SHAPES)
@example(seed=0, h=64, w=96, levels=0)  # preprocess's background estimate
@example(seed=0, h=1, w=1, levels=0)
def test_the_3x3_mean_is_scipys_to_the_bit(seed, h, w, levels):
    a = image(seed, h, w, levels)
    got = ops.mean3(a)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert got.tobytes() == ndi.uniform_filter(a, size=3).tobytes()


@FAST
@given(**SHAPES, size=st.integers(0, 80))
@example(seed=0, h=64, w=96, levels=0, size=19)  # 0.3 of the shorter side
@example(seed=0, h=64, w=64, levels=0, size=64)  # the window is the whole image
@example(seed=0, h=5, w=7, levels=4, size=2)  # even: the max's window is the min's mirror
def test_the_grey_opening_is_scipys(seed, h, w, levels, size):
    a = image(seed, h, w, levels)
    got = ops.opening(a, size)
    assert got.dtype == np.float32
    assert (got == ndi.grey_opening(a, size=size)).all()
    assert size > 1 or got is not a  # a copy, as SciPy's


@FAST
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 70), w=st.integers(1, 70),
       half=st.integers(0, 20), share=st.floats(0, 1))  # fmt: skip
@example(seed=0, h=1, w=1, half=3, share=1.0)
def test_the_square_dilation_is_scipys_maximum_filter(seed, h, w, half, share):
    mask = np.random.default_rng(seed).uniform(0, 1, (h, w)) < share * 0.2
    got = ops.square_dilation(mask, 2 * half + 1)
    assert got.dtype == bool and (got == ndi.maximum_filter(mask, size=2 * half + 1)).all()


@FAST
@given(**SHAPES, size=st.integers(1, 20))
@example(seed=0, h=64, w=96, levels=0, size=16)  # _light_ink's: a quarter of the shorter side
@example(seed=0, h=64, w=64, levels=4, size=16)
@example(seed=0, h=2, w=9, levels=0, size=3)  # the smallest window over a 2-px side
def test_the_median_filter_is_scipys(seed, h, w, levels, size):
    # SciPy reads outside the image for windows from 4x the shorter side: not compared.
    size = min(size, 4 * min(h, w) - 1)
    a = image(seed, h, w, levels)
    got = ops.median_filter(a, size)
    assert got.dtype == np.float32 and (got == ndi.median_filter(a, size=size)).all()


@FAST
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(1, 60), w=st.integers(1, 60),
       share=st.floats(0, 0.9))  # fmt: skip
@example(seed=0, h=5, w=5, share=0.0)  # no blobs
def test_blobs_and_their_boxes_are_scipys(seed, h, w, share):
    mask = np.random.default_rng(seed).uniform(0, 1, (h, w)) < share
    labels, boxes = ops.blobs(mask)
    expected, count = ndi.label(mask, structure=np.ones((3, 3)))
    assert (labels == expected).all() and len(boxes) == count
    assert boxes == ndi.find_objects(expected)

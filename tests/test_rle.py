import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from steelkit import rle


def test_hand_worked_column_major_one_based():
    mask = np.zeros((4, 3), dtype=np.uint8)
    mask[1:3, 0] = 1  # pixels 2 and 3: column 0 is numbered first, top to bottom, from 1
    mask[3, 0] = 1  # pixel 4: the run goes on down the column
    mask[0, 1] = 1  # pixel 5: the top of column 1 follows the bottom of column 0
    mask[2, 2] = 1  # pixel 11
    assert rle.encode(mask) == "2 4 11 1"
    np.testing.assert_array_equal(rle.decode("2 4 11 1", (4, 3)), mask)


def test_run_across_a_column_boundary():
    mask = np.zeros((256, 1600), dtype=np.uint8)
    mask[250:, 9] = 1
    mask[:10, 10] = 1
    assert rle.encode(mask) == f"{9 * 256 + 251} 16"


@pytest.mark.parametrize("shape", [(256, 1600), (64, 320), (1, 1), (3, 7)])
def test_empty_full_and_one_pixel(shape):
    empty = np.zeros(shape, dtype=np.uint8)
    full = np.ones(shape, dtype=np.uint8)
    last = empty.copy()
    last[-1, -1] = 1
    assert rle.encode(empty) == ""
    assert rle.encode(full) == f"1 {shape[0] * shape[1]}"
    assert rle.encode(last) == f"{shape[0] * shape[1]} 1"
    for mask in (empty, full, last):
        np.testing.assert_array_equal(rle.decode(rle.encode(mask), shape), mask)


def test_decode_returns_contiguous_uint8_of_the_shape():
    mask = rle.decode("1 3 300 20", (64, 320))
    assert mask.dtype == np.uint8 and mask.shape == (64, 320)
    assert mask.sum() == 23 and int(rle.decode("1 3 300 20").sum()) == 23


def test_encode_accepts_bool_and_nonbinary_masks():
    mask = np.zeros((8, 8), dtype=np.float32)
    mask[2, 3] = 0.7
    assert rle.encode(mask) == rle.encode(mask > 0) == f"{3 * 8 + 3} 1"


@settings(max_examples=200, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 60)), elements=st.integers(0, 1)))
def test_round_trip(mask):
    encoded = rle.encode(mask)
    np.testing.assert_array_equal(rle.decode(encoded, mask.shape), mask)
    values = [int(v) for v in encoded.split()]
    starts, lengths = values[0::2], values[1::2]
    assert all(length >= 1 for length in lengths)
    # runs sorted, separated by at least one pixel (a canonical encoding never has touching runs)
    assert all(s2 > s1 + l1 for s1, l1, s2 in zip(starts, lengths, starts[1:]))
    assert sum(lengths) == int(mask.sum())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), max_size=12))
def test_decode_then_encode_is_canonical(gaps_and_lengths):
    pairs, position = [], 0
    for gap, length in gaps_and_lengths:
        position += gap
        pairs.append((position, length))
        position += length
    shape = (16, max(1, (position + 16) // 16 + 1))
    text = " ".join(f"{s} {n}" for s, n in pairs)
    assert rle.encode(rle.decode(text, shape)) == text


@pytest.mark.parametrize("text, message", [
    ("1 2 3", "odd number"),
    ("1 2 x 3", "'x' at position 3 is not an integer"),
    ("1.5 2", "not an integer"),
    ("0 5", "start below 1"),
    ("-3 5", "start below 1"),
    ("4 0", "length below 1"),
    ("10 -1", "length below 1"),
    ("400 2", "past the end"),
    ("10 5 12 3", "overlaps or precedes"),
    ("20 2 10 2", "overlaps or precedes"),
])
def test_malformed_rle_is_rejected_with_what_and_where(text, message):
    with pytest.raises(ValueError, match=message):
        rle.decode(text, (20, 20))


def test_touching_runs_are_accepted():
    np.testing.assert_array_equal(rle.decode("1 2 3 2", (2, 2)), np.ones((2, 2), dtype=np.uint8))


def test_error_names_the_pair():
    with pytest.raises(ValueError, match=r"pair 2 \(12 3\)"):
        rle.decode("10 5 12 3", (20, 20))


def test_encode_rejects_non_2d():
    with pytest.raises(ValueError, match="2-D"):
        rle.encode(np.zeros((2, 3, 4)))


@pytest.mark.parametrize("text, message", [
    ("2 9223372036854775807", r"'9223372036854775807' at position 2 is larger than the 400 pixels"),
    ("1 99999999999999999999", r"'99999999999999999999' at position 2 is larger"),
    ("9223372036854775808 1", r"'9223372036854775808' at position 1 is larger"),
    ("1 \u0663", r"'\u0663' at position 2 is not an integer"),  # an Arabic-Indic three
    ("1 +3", r"'\+3' at position 2 is not an integer"),
])
def test_values_are_checked_against_the_image_before_any_arithmetic(text, message):
    with pytest.raises(ValueError, match=message):
        rle.decode(text, (20, 20))


def test_leading_zeros_are_still_numbers():
    np.testing.assert_array_equal(rle.decode("0000001 0000002", (2, 2)), rle.decode("1 2", (2, 2)))

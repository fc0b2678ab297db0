"""Shared fixtures: tiny synthetic competitions made once per session."""

from __future__ import annotations

import pytest

from steelkit import synthetic


@pytest.fixture(scope="session")
def mini(tmp_path_factory):
    """A 24 + 8 image synthetic competition of 64 x 320 images, long schema."""
    return synthetic.make(tmp_path_factory.mktemp("mini"),
                          synthetic.SynthConfig(n_train=24, n_test=8, height=64, width=320, seed=3))


@pytest.fixture(scope="session")
def mini_wide(tmp_path_factory):
    """The same competition written in the old wide schema."""
    return synthetic.make(tmp_path_factory.mktemp("mini_wide"),
                          synthetic.SynthConfig(n_train=24, n_test=8, height=64, width=320, seed=3,
                                                train_schema="wide"))

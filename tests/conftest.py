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


@pytest.fixture(scope="session")
def trained(mini, tmp_path_factory):
    """One-epoch tiny classifier and segmenter on the mini competition: <dir>/cls-tiny, <dir>/seg-tiny."""
    from steelkit import train
    from steelkit.recipe import override, preset

    out = tmp_path_factory.mktemp("trained")
    for name in ("cls-tiny", "seg-tiny"):
        train.train(override(preset(name), ["epochs=1", "n_folds=3"]), mini, out / name, device="cpu")
    return out


@pytest.fixture(scope="session", autouse=True)
def cache_home(tmp_path_factory):
    """steelkit's caches (the budget's FLOP counts, the image caches) in folders of the test session, not
    the user's home or /dev/shm."""
    import os

    names = ("XDG_CACHE_HOME", "STEELKIT_IMAGE_CACHE_DIR")  # and training's image caches, not /dev/shm
    before = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ[name] = str(tmp_path_factory.mktemp(name.lower()))
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

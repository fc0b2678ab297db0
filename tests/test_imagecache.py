import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, Dataset

from steelkit import distributed, imagecache, train
from steelkit.augment import train_augment
from steelkit.competition import decode_image, read_labels
from steelkit.datasets import SteelDataset, samples_from_table, worker_init_fn
from steelkit.recipe import override, preset

SHAPE = (64, 320)


def _images(mini, n=6):
    return sorted((mini / "train_images").iterdir())[:n]


def _state(path):
    stat = os.stat(path)
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def test_a_cache_is_filled_once_and_opened_not_rewritten(mini, tmp_path):
    paths = _images(mini)
    cache = imagecache.ImageCache.create(tmp_path, paths, SHAPE, 1)
    assert cache.filled() == 0
    seconds = cache.fill(workers=2)
    assert seconds >= 0 and cache.filled() == len(paths)
    for path in paths:
        np.testing.assert_array_equal(cache.read(path), decode_image(path, grayscale=True))
    assert cache.misses == 0, "filled: every read is a hit"
    before = _state(cache.path)
    again = imagecache.ImageCache.create(tmp_path, paths, SHAPE, 1)
    assert again.path == cache.path and _state(cache.path) == before and again.filled() == len(paths)
    assert [p.name for p in tmp_path.iterdir()] == [cache.path.name]


def test_a_cache_of_other_images_sizes_or_channels_is_never_used(mini, tmp_path):
    paths = _images(mini)
    cache = imagecache.ImageCache.create(tmp_path, paths, SHAPE, 1)
    cache.fill(workers=1)
    for others, shape, channels, differ in ((paths[:-1], SHAPE, 1, "count, images"), (paths, (64, 160), 1, "shape"),
                                            (paths, SHAPE, 3, "channels")):
        with pytest.raises(ValueError, match=rf"image cache .* holds other images \({differ} differ\): not used"):
            imagecache.ImageCache.open(cache.path, others, shape, channels)
        made = imagecache.ImageCache.create(tmp_path, others, shape, channels)
        assert made.path != cache.path and made.filled() == 0
    touched = paths[0]
    os.utime(touched, ns=(os.stat(touched).st_atime_ns, os.stat(touched).st_mtime_ns + 10**9))
    with pytest.raises(ValueError, match="images differ"):  # a rewritten image: another image set
        imagecache.ImageCache.open(cache.path, paths, SHAPE, 1)


def test_filling_names_every_bad_image(mini, tmp_path):
    paths = _images(mini, 3)
    broken = tmp_path / "images" / "broken.jpg"
    broken.parent.mkdir()
    broken.write_bytes(b"not a jpeg")
    cache = imagecache.ImageCache.create(tmp_path, [*paths, broken, tmp_path / "gone.jpg"], SHAPE, 1)
    with pytest.raises(ValueError, match=r"2 of 5 training images cannot be used:\n  .*broken.jpg.*\n  .*gone.jpg"):
        cache.fill(workers=2)
    assert cache.filled() == 3, "the good images are cached all the same"


class _Reads(Dataset):
    """What a DataLoader worker reads from the cache: the pixels, and whether they are the file's pages."""

    def __init__(self, cache, paths):
        self.cache, self.paths = cache, paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        image = self.cache.read(self.paths[i])
        mapped = isinstance(image, np.memmap) and os.path.samefile(image.filename, self.cache.path)
        return {"image": torch.from_numpy(np.array(image)), "mapped": mapped, "misses": self.cache.misses}


def test_two_workers_read_the_one_file(mini, tmp_path):
    paths = _images(mini)
    cache = imagecache.ImageCache.create(tmp_path, paths, SHAPE, 1)
    cache.fill(workers=1)
    before = _state(cache.path)
    loader = DataLoader(_Reads(cache, paths), batch_size=2, num_workers=2, worker_init_fn=worker_init_fn)
    batches = list(loader)
    assert all(b["mapped"].all() and b["misses"].sum() == 0 for b in batches)
    got = torch.cat([b["image"] for b in batches]).numpy()
    np.testing.assert_array_equal(got, np.stack([decode_image(p, True) for p in paths]))
    assert _state(cache.path) == before and len(list(tmp_path.iterdir())) == 1


def _rank_reads(rank, init, paths, folder, out):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    os.environ["STEELKIT_IMAGE_CACHE_DIR"] = str(folder)
    context = distributed.Context(rank=rank, world_size=2)
    recipe = override(preset("seg-tiny"), ["image_cache=on"])
    cache = train.image_cache(recipe, paths, SHAPE, True, context)
    images = np.stack([np.array(cache.read(p)) for p in paths])
    np.save(out / f"rank{rank}.npy", images)
    (out / f"rank{rank}.txt").write_text(f"{cache.path} {cache.misses} {cache.filled()}")
    dist.destroy_process_group()


def test_two_processes_share_the_cache_rank_zero_fills(mini, tmp_path):
    paths, folder, out = _images(mini), tmp_path / "cache", tmp_path / "out"
    folder.mkdir(), out.mkdir()
    mp.spawn(_rank_reads, args=(f"file://{tmp_path / 'rendezvous'}", paths, folder, out), nprocs=2)
    expected = np.stack([decode_image(p, True) for p in paths])
    reports = [(out / f"rank{r}.txt").read_text().split() for r in (0, 1)]
    assert reports[0][0] == reports[1][0] and len(list(folder.iterdir())) == 1, "one file for both processes"
    assert reports[1][1:] == ["0", str(len(paths))], "rank 1 found every image filled by rank 0"
    for rank in (0, 1):
        np.testing.assert_array_equal(np.load(out / f"rank{rank}.npy"), expected)


def test_items_with_and_without_the_cache_are_the_same(mini, tmp_path):
    rows = read_labels(mini / "train.csv", mini / "train_images").head(8)
    samples = samples_from_table(rows, mini / "train_images")
    recipe = override(preset("cls-tiny"), ["blackout=1.0"])
    cache = imagecache.ImageCache.create(tmp_path, [s.image_path for s in samples], SHAPE, 1)
    with_cache = SteelDataset(samples, SHAPE, train_augment(recipe, SHAPE), True, cache, seed=5)
    without = SteelDataset(samples, SHAPE, train_augment(recipe, SHAPE), True, seed=5)
    for key in [(epoch, i) for epoch in (0, 1) for i in range(len(samples))]:
        a, b = with_cache[key], without[key]
        for name in ("image", "mask", "labels"):
            assert torch.equal(a[name], b[name]), (key, name)
    assert cache.misses == len(samples) and cache.filled() == len(samples), "filled on first reads"


def test_choose_says_where_and_why(tmp_path, monkeypatch):
    where, line = imagecache.choose("auto", 10_000, str(tmp_path))
    assert where == tmp_path and line.startswith("image cache: on") and str(tmp_path) in line
    where, line = imagecache.choose("off", 10_000, str(tmp_path))
    assert where is None and "image_cache=off" in line
    monkeypatch.setattr(imagecache, "available_memory", lambda: 1_000_000)
    where, line = imagecache.choose("auto", 10_000_000, str(tmp_path))
    assert where is None and "10.0 MB of images exceed the 500 kB it may use" in line
    assert "image_cache=on forces it" in line
    assert imagecache.choose("on", 10_000_000, str(tmp_path))[0] == tmp_path
    with pytest.raises(ValueError, match="image_cache 'maybe'"):
        imagecache.choose("maybe", 1)
    assert imagecache.available_memory() > 0

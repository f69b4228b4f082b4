"""The loader machinery every trial uses, on either data path: one DataLoader, one pool of
persistent workers, for training epochs and for validation and test passes alike.

- Samples are keyed ``(split, index, seed)``: the batch sampler (in the training process) decides
  what the next pass yields, so one set of persistent workers serves every pass of the trial.
- Each training sample's augmentation is drawn from its own seed, made of the search seed, the
  epoch, the rank and its position in the epoch, and each epoch's order from the seed and epoch
  (the same on every rank, which takes every ``world``-th image). So an epoch is the same with 0
  or 8 loader workers, persistent or not, and a trial resumed at an epoch boundary continues
  exactly as if it had not stopped.
- Workers hand over uint8 batches; timm's ``PrefetchLoader`` moves them to the device (pinned
  memory and a side stream on CUDA) and normalizes them there, then ``BatchAugment`` adds noise
  and random erasing (``_augment.py``).
- A file that cannot be read while streaming leaves its batch one image short and is counted
  (``unreadable``); an epoch never fails on it.
- Ready path: a split decoded in memory at the model's size needs no per-sample work to be
  evaluated, nor to be trained on when the recipe has no per-sample augmentation
  (``Transforms.per_sample``). Its batches are sliced from the decoded array in the same keys'
  order, the same bytes the loader would build, with no worker process and no PIL round trip:
  what a hand-written loop over ready tensors does. Batch steps (noise, erasing) still apply.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from timm.data.loader import PrefetchLoader, fast_collate
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from tunefleet.spaces import DataSpec, Resources

from ._augment import Transforms
from ._splits import FileSplit, ImageData, Split

Key = tuple[str, int, int | None]  # (split, index in it, augmentation seed; None to evaluate)
Batch = tuple[torch.Tensor, torch.Tensor]


def loader_workers(data: DataSpec, resources: Resources) -> int:
    """``data.loader_workers``, else one per CPU the trial worker reserves beyond the first (that
    one runs the training loop), and at least one, so loading overlaps the training step."""
    if data.loader_workers is not None:
        return data.loader_workers
    return max(1, int(resources.cpus_per_worker) - 1)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    return (seed * 1_000_003 + epoch * 1009 + rank) % 2**31


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Python's, NumPy's and torch's CPU generators seeded for one sample. In a loader worker
    that is all; with no workers this runs in the training process, whose own random streams are
    put back after (saving NumPy's state costs more than the rest, so only there)."""
    in_worker = get_worker_info() is not None
    saved = None if in_worker else (random.getstate(), np.random.get_state(), torch.get_rng_state())
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        if saved is not None:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


class _Samples(Dataset[tuple[torch.Tensor, int] | None]):
    def __init__(self, splits: dict[str, Split | FileSplit], transforms: Transforms) -> None:
        self.splits = splits
        self.transforms = transforms

    def __len__(self) -> int:
        return sum(len(s) for s in self.splits.values())

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, int] | None:
        split, i, seed = key
        source = self.splits[split]
        try:
            image = source.image(i)
        except Exception:  # any decoder error: one image short, counted by the collate
            return None
        if seed is None:
            return self.transforms.evaluate(image), int(source.labels[i])
        with _seeded(seed):
            return self.transforms.train(image), int(source.labels[i])


class _Collate:
    """timm's ``fast_collate`` (uint8 batch) over the readable samples, and how many were not."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.shape = shape

    def __call__(self, items: list[tuple[torch.Tensor, int] | None]) -> tuple[torch.Tensor, torch.Tensor, int]:
        kept = [item for item in items if item is not None]
        if not kept:
            return torch.zeros((0, *self.shape), dtype=torch.uint8), torch.zeros(0, dtype=torch.int64), len(items)
        x, y = fast_collate(kept)
        return x, y, len(items) - len(kept)


class _Passes(Sampler[list[Key]]):
    """The batch sampler: yields the keys of whichever pass was set last."""

    def __init__(self, seed: int, rank: int, world: int) -> None:
        self.seed, self.rank, self.world = seed, rank, world
        self.batches: list[list[Key]] = []

    def train(self, n: int, epoch: int, batch: int, drop_last: bool) -> None:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, epoch)))
        mine = order[: n - n % self.world][self.rank :: self.world].tolist()  # disjoint, equal shards
        base = epoch_seed(self.seed, epoch, self.rank) * 7919
        keys: list[Key] = [("train", i, (base + pos) % 2**31) for pos, i in enumerate(mine)]
        stop = len(keys) - len(keys) % batch if drop_last else len(keys)
        self.batches = [keys[k : k + batch] for k in range(0, stop, batch)]

    def evaluate(self, split: str, n: int, batch: int) -> None:
        keys: list[Key] = [(split, i, None) for i in range(n)]
        self.batches = [keys[k : k + batch] for k in range(0, n, batch)]

    def __iter__(self) -> Iterator[list[Key]]:
        return iter(list(self.batches))

    def __len__(self) -> int:
        return len(self.batches)


class _Counted:
    """Drops the collate's unreadable count from each batch, adding it up."""

    def __init__(self, loader: DataLoader[Any]) -> None:
        self.loader: DataLoader[Any] | None = loader
        self.unreadable = 0
        self.primed: Iterator[Any] | None = None

    def prime(self) -> None:
        """Start the next pass now: the workers begin on its first batches."""
        if self.loader is not None:
            self.primed = iter(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        if self.loader is None:
            raise RuntimeError("the data feed is closed")
        batches, self.primed = self.primed or iter(self.loader), None
        for x, y, unreadable in batches:
            self.unreadable += unreadable
            yield x, y

    def __len__(self) -> int:
        return len(self.loader) if self.loader is not None else 0


class _Ready:
    """Batches of the in-memory splits sliced from their arrays, for whichever pass was set last
    (the loader's ``_Collate`` output, bytes for bytes: uint8 [B, C, H, W] and int64 labels)."""

    def __init__(self, splits: dict[str, Split], passes: _Passes, pin: bool) -> None:
        # Views of the decoded arrays, no copy: [N, H, W] gains its channel, [N, H, W, 3] turns.
        self.images = {name: _channels_first(torch.from_numpy(split.images)) for name, split in splits.items()}
        self.labels = {name: torch.from_numpy(split.labels) for name, split in splits.items()}
        self.passes = passes
        self.pin = pin  # for a GPU, as the loader pins: an unpinned copy would wait on the training stream
        self.closed = False

    def __iter__(self) -> Iterator[Batch]:
        if self.closed:
            raise RuntimeError("the data feed is closed")
        for keys in list(self.passes.batches):
            split = keys[0][0]
            index = torch.tensor([i for _, i, _ in keys], dtype=torch.int64)
            x, y = self.images[split][index].contiguous(), self.labels[split][index]
            yield (x.pin_memory(), y.pin_memory()) if self.pin else (x, y)

    def __len__(self) -> int:
        return len(self.passes.batches)


def _channels_first(images: torch.Tensor) -> torch.Tensor:
    return images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)


class DataFeed:
    """Training epochs and evaluation passes over one dataset, as normalized batches on ``device``."""

    def __init__(
        self,
        data: ImageData[Split] | ImageData[FileSplit],
        transforms: Transforms,
        device: torch.device,
        *,
        workers: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        ready: bool = True,
    ) -> None:
        """``ready=False`` sends every pass through the loader (to compare the two paths)."""
        self.splits: dict[str, Split | FileSplit] = {"train": data.train, "val": data.val, "test": data.test}
        self.passes = _Passes(seed, rank, world)
        shape = (data.in_chans, data.train.size, data.train.size)
        loader = DataLoader(
            _Samples(self.splits, transforms),
            batch_sampler=self.passes,
            num_workers=workers,
            collate_fn=_Collate(shape),
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
            # Its own generator: each new iterator draws a base seed from it, which must not move
            # the training process's torch stream (dropout and noise draw from that).
            generator=torch.Generator(),
        )
        self.counted = _Counted(loader)

        def normalized(source: _Counted | _Ready) -> PrefetchLoader:
            # Iterated and measured only, as a loader is: either source stands in for one.
            return PrefetchLoader(source, transforms.mean, transforms.std, data.in_chans, device)  # type: ignore[arg-type]

        self.prefetch = normalized(self.counted)
        self.augment = transforms.batch_augment(device)
        self.primed_epoch = 0
        at_size = {n: s for n, s in self.splits.items() if isinstance(s, Split) and s.size == transforms.size}
        in_memory = at_size if ready else {}
        self.sliced = _Ready(in_memory, self.passes, pin=device.type == "cuda")
        self.ready = normalized(self.sliced)
        self.ready_train = "train" in in_memory and not transforms.per_sample

    @property
    def ready_splits(self) -> set[str]:
        """The splits every pass of which is sliced from memory."""
        return set(self.sliced.images)

    @property
    def loader_needed(self) -> bool:
        """Whether any pass goes through the loader (and its worker processes)."""
        return not (self.ready_train and self.ready_splits == set(self.splits))

    @property
    def unreadable(self) -> int:
        """Images that could not be read so far (each pass counts them again)."""
        return self.counted.unreadable

    def prime(self, epoch: int, batch: int, drop_last: bool) -> None:
        """Have the workers start on ``epoch`` now, while the trial goes on setting up; the next
        ``train(epoch)`` takes those batches (any other pass asked for first discards them)."""
        if self.ready_train:
            return  # nothing to start: the epoch's batches are sliced when asked for
        self.passes.train(len(self.splits["train"]), epoch, batch, drop_last)
        self.counted.prime()
        self.primed_epoch = epoch

    def train(self, epoch: int, batch: int, drop_last: bool) -> Iterator[Batch]:
        """One epoch's batches, augmented: the order and every draw seeded from (seed, epoch, rank)."""
        if self.ready_train:
            self.passes.train(len(self.splits["train"]), epoch, batch, drop_last)
            batches = iter(self.ready)
        else:
            if self.counted.primed is None or self.primed_epoch != epoch:
                self.counted.primed = None
                self.passes.train(len(self.splits["train"]), epoch, batch, drop_last)
            batches = self._batches()
        for x, y in batches:
            yield (self.augment(x) if self.augment.active else x), y

    def evaluate(self, split: str, batch: int) -> Iterator[Batch]:
        """``split`` ("val" or "test") in order, in batches, without augmentation."""
        self.passes.evaluate(split, len(self.splits[split]), batch)
        if split in self.ready_splits:
            return iter(self.ready)  # a primed training epoch keeps its batches
        self.counted.primed = None
        return self._batches()

    def _batches(self) -> Iterator[Batch]:
        return iter(self.prefetch)

    def close(self) -> None:
        """Let the persistent workers go: they exit when the DataLoader, held only here, is collected."""
        self.counted.loader = None
        self.sliced.closed = True

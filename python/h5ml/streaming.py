"""Streaming signal datasets for PyTorch: the LSTM_PFD StreamingHDF5Dataset API on libh5ml.

    dataset = StreamingHDF5Dataset('data/processed/dataset.h5', split='train', cache_size=128)
    loader = DataLoader(dataset, batch_size=32, num_workers=4)
    for signal_batch, label_batch in loader:   # [32, 1, L] float32, [32] int64
        ...

As in the original, dataset[i] is (signal, label): the signal a float32 tensor of shape
[1, L], the label a Python int (the DataLoader's collate turns a batch of them into an
int64 tensor [B]). With a `transform`, the signal passed to it is the float32 numpy array
of shape (L,) and its result is returned in place of the tensor, as the original did; a
numpy result is wrapped by torch.from_numpy (without a copy, shape unchanged), which is
what the original's default collate made of it.

Differences from the original, all deliberate:
- Reads go through libh5ml (each chunk decompressed straight from the file).
- cache_size is a true LRU of decoded signals (the original's was FIFO); ChunkedStreamingDataset
  uses the library's prefetch block of chunk_size consecutive signals.
- The file is opened lazily in each process (a SigReader made on first access there),
  never shared across fork, and the dataset pickles without handles or locks, so
  DataLoader workers work under both fork and spawn.
- split=None reads a flat cache (CacheManager.cache_dataset's layout).
- With torch >= 2.0, `__getitems__` reads a whole batch of indices in one library call.
"""
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import _h5ml
from ._common import SPLITS, PerProcessHandle, fspath, index_of
from .signals import open_signal_reader

__all__ = ["StreamingHDF5Dataset", "ChunkedStreamingDataset", "create_streaming_dataloaders"]


class StreamingHDF5Dataset(PerProcessHandle, Dataset):
    """Memory-efficient HDF5 dataset that reads signals on demand.

    Args:
        hdf5_path: path to the HDF5 file (split or flat signal cache).
        split: 'train', 'val' or 'test' (None for a flat file).
        transform: optional callable applied to each signal (float32 numpy array (L,)).
        cache_size: number of decoded signals kept in an LRU cache per process (0 = none).

    Raises FileNotFoundError for a missing file and ValueError("Split 'X' not found.
    Available: [...]") for a split the file does not have.
    """

    def __init__(self, hdf5_path, split="train", transform=None, cache_size=0):
        self.hdf5_path = fspath(hdf5_path)
        self.split = split
        self.transform = transform
        self.cache_size = int(cache_size or 0)
        self._prefetch = 0
        reader = _h5ml.SigReader(self.hdf5_path, split)
        try:
            self.num_samples = reader.count
            self.signal_length = reader.length
            attrs = reader.attrs()
            self.labels = reader.labels()
        finally:
            reader.close()
        self.sampling_rate = attrs.get("sampling_rate", 20480)
        self.num_classes = attrs.get("num_classes", 11)
        self.class_names = attrs.get("class_names")

    def _open_handle(self):
        return _h5ml.SigReader(self.hdf5_path, self.split, cache=self.cache_size, prefetch=self._prefetch)

    def __len__(self):
        return self.num_samples

    def _check(self, idx):
        i = index_of(idx)
        if i < 0 or i >= self.num_samples:
            raise IndexError(f"Index {i} out of range [0, {self.num_samples})")
        return i

    def _sample(self, signal, label):
        if self.transform is not None:
            out = self.transform(signal)
            return (torch.from_numpy(out) if isinstance(out, np.ndarray) else out), int(label)
        return torch.from_numpy(signal).unsqueeze(0), int(label)

    def __getitem__(self, idx):
        """(signal tensor [1, L] float32, label int) of sample idx."""
        signal, label = self._get_reader().get(self._check(idx))
        return self._sample(signal, label)

    def __getitems__(self, indices):
        idx = np.fromiter((self._check(i) for i in indices), dtype=np.int64)
        signals, labels = self._get_reader().read(idx)
        return [self._sample(signals[k], labels[k]) for k in range(len(idx))]

    def get_batch(self, indices):
        """(signals [B, 1, L] float32, labels [B] int64) of many samples in one read (no
        transform)."""
        idx = np.fromiter((self._check(i) for i in indices), dtype=np.int64)
        signals, labels = self._get_reader().read(idx)
        return torch.from_numpy(signals).unsqueeze(1), torch.from_numpy(labels)

    def get_labels(self):
        """All labels of the split (int64 numpy array), without reading any signal."""
        return self.labels

    def get_class_distribution(self):
        """{label: count} over the split."""
        values, counts = np.unique(self.labels, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts)}

    def get_sample_metadata(self, idx):
        """The JSON metadata of sample idx as a dict (None when it has none)."""
        import json

        text = self._get_reader().metadata(self._check(idx))
        return json.loads(text) if text is not None else None

    def get_original_indices(self):
        """Each sample's index before splitting (0..N-1 for a flat file)."""
        return self._get_reader().indices()

    def get_metadata(self):
        """Return dataset metadata."""
        return {
            "path": self.hdf5_path,
            "split": self.split,
            "num_samples": self.num_samples,
            "signal_length": self.signal_length,
            "sampling_rate": self.sampling_rate,
            "num_classes": self.num_classes,
            "cache_size": self.cache_size,
        }

    def cache_stats(self):
        """dict(hits, misses, chunks_read) of this process's reader."""
        return self._get_reader().stats()

    def __repr__(self):
        return f"{type(self).__name__}({self.hdf5_path!r}, split={self.split!r}, {self.num_samples} samples)"


class ChunkedStreamingDataset(StreamingHDF5Dataset):
    """Streaming dataset with chunked prefetching: chunk_size consecutive signals are read
    at once and served from memory (the library's prefetch block), for sequential access on
    slow storage.

    Args:
        hdf5_path: path to the HDF5 file.
        split: which split to use.
        chunk_size: number of samples to prefetch at once.
        transform: optional callable applied to each signal.
    """

    def __init__(self, hdf5_path, split="train", chunk_size=256, transform=None):
        super().__init__(hdf5_path, split, transform, cache_size=0)
        self.chunk_size = int(chunk_size)
        self._prefetch = self.chunk_size


def _splits_present(hdf5_path):
    reader = open_signal_reader(hdf5_path)
    try:
        return set(reader.split_counts) if reader.layout == "split" else set()
    finally:
        reader.close()


def create_streaming_dataloaders(hdf5_path, batch_size=32, num_workers=4, train_transform=None, test_transform=None,
                                 use_chunked=False, chunk_size=256, cache_size=0, pin_memory=None,
                                 persistent_workers=None, multiprocessing_context=None, **loader_kwargs):
    """DataLoaders for the splits the file has: {'train', 'val', 'test'} (train shuffled,
    with drop_last as in the original). pin_memory None means "if CUDA is available" and
    persistent_workers None means num_workers > 0 (the original's choices); cache_size is
    the per-process LRU of StreamingHDF5Dataset; other keyword arguments go to every
    DataLoader."""
    present = _splits_present(hdf5_path)
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    if persistent_workers is None:
        persistent_workers = num_workers > 0
    loaders = {}
    for split in SPLITS:
        if split not in present:
            continue
        is_train = split == "train"
        transform = train_transform if is_train else test_transform
        if use_chunked:
            dataset = ChunkedStreamingDataset(hdf5_path, split=split, chunk_size=chunk_size, transform=transform)
        else:
            dataset = StreamingHDF5Dataset(hdf5_path, split=split, transform=transform, cache_size=cache_size)
        kwargs = dict(batch_size=batch_size, shuffle=is_train, num_workers=num_workers, pin_memory=pin_memory,
                      drop_last=is_train)
        if num_workers > 0:
            kwargs["persistent_workers"] = persistent_workers
            if multiprocessing_context is not None:
                kwargs["multiprocessing_context"] = multiprocessing_context
        kwargs.update(loader_kwargs)
        loaders[split] = DataLoader(dataset, **kwargs)
    return loaders

"""LSTM_PFD's data.cache_manager, served by h5ml (see h5ml.signals)."""
from h5ml.signals import CacheManager, cache_dataset_simple, load_cached_dataset_simple  # noqa: F401

__all__ = ["CacheManager", "cache_dataset_simple", "load_cached_dataset_simple"]

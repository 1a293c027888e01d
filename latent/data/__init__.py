"""Datasets: ingestion of sources into raw tables, Dask preprocessing into dataset tables, reading them."""

from latent.data.dataset import DatasetInfo, load_dataset_arrays, read_dataset_info
from latent.data.ingest import IngestResult, ingest, source_fingerprint
from latent.data.preprocess import PreprocessResult, dataset_version, preprocess

__all__ = [
    "DatasetInfo",
    "IngestResult",
    "PreprocessResult",
    "dataset_version",
    "ingest",
    "load_dataset_arrays",
    "preprocess",
    "read_dataset_info",
    "source_fingerprint",
]

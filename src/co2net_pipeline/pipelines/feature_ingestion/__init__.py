"""Feature ingestion: W-TALC / per-video npy / HDF5 features → validated HDF5 store and tables."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]

"""The canonical tweet store (Parquet + DuckDB, embedded)."""

from pipeline.store.atomic import StoreBusyError
from pipeline.store.store import StagedArchive, Store, StoreError, Transaction, stage_archive

__all__ = ["StagedArchive", "Store", "StoreBusyError", "StoreError", "Transaction", "stage_archive"]

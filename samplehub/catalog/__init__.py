"""The catalog: Delta tables partitioned by dataset (DESIGN section 4)."""

from samplehub.catalog.delta import Catalog, DataFile, DatasetInfo
from samplehub.catalog.duplicates import Copy, DuplicateImage, DuplicateReport, find_duplicates

__all__ = ["Catalog", "Copy", "DataFile", "DatasetInfo", "DuplicateImage", "DuplicateReport",
           "find_duplicates"]

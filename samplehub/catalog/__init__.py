"""The catalog: Delta tables partitioned by dataset (DESIGN section 4)."""

from samplehub.catalog.delta import Catalog, DatasetInfo
from samplehub.catalog.duplicates import Copy, DuplicateImage, DuplicateReport, find_duplicates

__all__ = ["Catalog", "Copy", "DatasetInfo", "DuplicateImage", "DuplicateReport",
           "find_duplicates"]

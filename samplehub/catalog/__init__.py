"""The catalog: Delta tables partitioned by dataset (DESIGN section 4)."""

from samplehub.catalog.delta import Catalog, DatasetInfo

__all__ = ["Catalog", "DatasetInfo"]

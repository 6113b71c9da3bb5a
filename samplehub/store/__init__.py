"""The sample store: one Zarr v3 store per dataset (DESIGN section 4)."""

from samplehub.store.zarr_store import DatasetStore, SampleStore, array_key

__all__ = ["DatasetStore", "SampleStore", "array_key"]

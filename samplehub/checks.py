"""Catalog invariants, checked by Dagster asset checks and by tests.

Each function checks one property and returns a :class:`CheckOutcome`; none swallows an
error: a catalog that cannot be read fails the check run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from samplehub.catalog import Catalog


@dataclass
class CheckOutcome:
    """Whether a property holds, with the numbers behind the verdict."""

    passed: bool
    description: str
    metadata: dict[str, int | str] = field(default_factory=dict)


def sample_ids_unique(catalog: Catalog, dataset: str) -> CheckOutcome:
    """No sample id appears twice in a dataset's partition."""
    ids = catalog.sample_ids(dataset)
    duplicates = int(len(ids) - len(np.unique(ids)))
    return CheckOutcome(
        duplicates == 0,
        f"{dataset}: {duplicates} duplicated sample ids among {len(ids)}",
        {"rows": len(ids), "duplicates": duplicates},
    )


def row_count_matches_source(catalog: Catalog, dataset: str) -> CheckOutcome:
    """Catalog rows == files found by the last ingest - files quarantined by it."""
    info = catalog.dataset(dataset)
    rows = len(catalog.sample_ids(dataset))
    expected = info.n_found - info.n_quarantined
    return CheckOutcome(
        rows == expected,
        f"{dataset}: {rows} rows, source had {info.n_found} files, "
        f"{info.n_quarantined} quarantined",
        {"rows": rows, "found": info.n_found, "quarantined": info.n_quarantined},
    )

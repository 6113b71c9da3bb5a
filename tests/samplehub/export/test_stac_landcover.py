"""A sample's land-cover shares are exported as the STAC label extension's overviews."""

from __future__ import annotations

from datetime import UTC, datetime

from pystac.extensions.label import LabelExtension
from stac_pydantic import Item as ItemModel

from samplehub.export.stac import stac_item

ROW = {"dataset": "ucmerced", "sample_id": 7, "relpath": "a/b.jpg", "time": None,
       "ingested_at": datetime(2026, 1, 1, tzinfo=UTC), "bands": ["red", "green", "blue"]}
MEMBER = {"label": "residential", "labels": ["residential"], "kind": "exact", "score": 1.0,
          "reason": "carries residential", "split": "train"}


def test_landcover_shares_become_label_overviews() -> None:
    item = stac_item(ROW, MEMBER, ["residential"], None, {"buildings": 0.4, "trees": 0.6})
    [overview] = LabelExtension.ext(item).label_overviews or []
    assert overview.property_key == "landcover"
    assert {s.name: s.value for s in overview.statistics or []} == {"buildings": 0.4,
                                                                     "trees": 0.6}
    ItemModel.model_validate(item.to_dict())
    plain = stac_item(ROW, MEMBER, ["residential"], None)
    assert "label:overviews" not in plain.properties

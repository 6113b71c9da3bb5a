"""Images whose headers promise absurd sizes are refused before decoding, never read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hostile import png_header, sparse_geotiff

from samplehub.errors import InvalidSampleError
from samplehub.sources.readers import MAX_DECODED_VALUES, decode_image


def test_a_png_bomb_is_refused_from_its_header() -> None:
    data = png_header(100_000, 100_000)
    assert len(data) < 200
    with pytest.raises(InvalidSampleError, match=r"bomb\.png: .*(decompression bomb|decode)"):
        decode_image(data, "bomb.png")


def test_a_geotiff_claiming_absurd_dimensions_is_refused(tmp_path: Path) -> None:
    path = sparse_geotiff(tmp_path / "huge.tif", 40_000, 40_000)
    assert 40_000 * 40_000 > MAX_DECODED_VALUES and path.stat().st_size < 5_000_000
    with pytest.raises(InvalidSampleError,
                       match=r"huge\.tif: 40000 x 40000 pixels x 1 bands is over the decode"):
        decode_image(path.read_bytes(), str(path))


def test_an_ingest_quarantines_them_and_keeps_the_rest(home: Path, tmp_path: Path) -> None:
    from PIL import Image

    from samplehub.config import load_config
    from samplehub.repository import Repository
    from samplehub.sources import SourceSpec

    root = tmp_path / "hostile" / "forest"
    root.mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "fine.png")
    (root / "bomb.png").write_bytes(png_header(100_000, 100_000))
    sparse_geotiff(root / "huge.tif", 40_000, 40_000)
    repo = Repository(load_config())
    report = repo.ingest(SourceSpec(name="hostile", uri=str(tmp_path / "hostile")))
    assert report.added == 1
    reasons = {q.entry.relpath: q.reason for q in report.quarantined}
    assert set(reasons) == {"forest/bomb.png", "forest/huge.tif"}
    assert "over the decode limit" in reasons["forest/huge.tif"]

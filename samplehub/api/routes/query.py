"""POST /query (the three-step query) and POST /query/image (query by image)."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import replace
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, UploadFile
from PIL import Image, UnidentifiedImageError

from samplehub.api.models import HitOut, QueryRequest, QueryResponse
from samplehub.api.state import ApiState, get_state
from samplehub.errors import InvalidSampleError, UploadTooLargeError
from samplehub.export.spec import query_id
from samplehub.repository import Repository
from samplehub.retrieval.landcover import LandcoverRequest, parse_weights
from samplehub.retrieval.types import QueryResult
from samplehub.sources.readers import check_decoded_size

router = APIRouter(tags=["query"])


def plain(value: dict[str, Any]) -> dict[str, Any]:
    """A plan or timings dict as plain JSON values."""
    return json.loads(json.dumps(value, default=str))  # type: ignore[no-any-return]


def respond(
    result: QueryResult, spec_id: str, rejected: set[int], repo: Repository | None = None
) -> QueryResponse:
    """The response of a query result, without samples rejected for this query.

    With ``repo``, each hit carries its land-cover class proportions (``landcover_stats``).
    """
    hits = [h for h in result.hits if h.sample_id not in rejected]
    shares = landcover_of(repo, [h.sample_id for h in hits])
    exact = sum(h.kind == "exact" for h in hits)
    supplementary = sum(h.kind == "supplementary" for h in hits)
    if not hits:
        message = "no sample matches this query; widen the constraints or check the labels"
    elif result.spec.labels:
        message = f"{exact} exact and {supplementary} supplementary samples"
    else:
        message = f"{len(hits)} visually similar samples"
    if rejected:
        message += f" ({len(rejected)} rejected earlier for this query left out)"
    return QueryResponse(
        spec_id=spec_id, message=message, exact=exact, supplementary=supplementary,
        hits=[HitOut.of(h, shares.get(h.sample_id)) for h in hits], plan=plain(result.plan),
        timings_ms=plain(result.timings_ms),
    )


@router.post("/query", response_model=QueryResponse)
def query(body: QueryRequest, state: Annotated[ApiState, Depends(get_state)]) -> QueryResponse:
    """Exact matches and supplementary samples of the query labels (main paper 3.4)."""
    spec = body.query_spec()
    spec_id = query_id(replace(spec, exact_limit=None))  # feedback holds for every page
    result = state.query(state.repo, spec)
    return respond(result, spec_id, state.rejections.of(spec_id), state.repo)


@router.post("/query/image", response_model=QueryResponse)
def query_image(
    state: Annotated[ApiState, Depends(get_state)],
    file: Annotated[UploadFile | None, File(description="an RGB image (PNG, JPEG, ...)")] = None,
    sample_id: Annotated[int | None, Form(description="or a catalogued sample")] = None,
    k: Annotated[int, Form(ge=1, le=1000)] = 20,
    rerank_k: Annotated[
        int | None, Form(ge=1, description="re-rank the visual top K by land cover (HIR Eq. 1)")
    ] = None,
    landcover_weights: Annotated[
        str | None, Form(description="Eq. 1 class weights, e.g. 'buildings=4'")
    ] = None,
    landcover: Annotated[
        str | None, Form(description="land-cover constraint, e.g. 'water>=0.2,buildings<=0.1'")
    ] = None,
) -> QueryResponse:
    """The k samples most similar to an uploaded image or to a catalogued sample.

    ``rerank_k`` re-ranks the visual top K by land cover (HIR stage 2) with
    ``landcover_weights``; ``landcover`` keeps only samples meeting the constraint.
    """
    if (file is None) == (sample_id is None):
        raise InvalidSampleError("send exactly one of an image file (field 'file') or 'sample_id'")
    request = None
    if rerank_k or landcover:
        request = LandcoverRequest(rerank_k, parse_weights(landcover_weights or ""), landcover)
    if file is not None:
        image = decode_image(file, int(state.repo.config.max_upload_mb * 1_000_000))
        result = state.image_query(state.repo, image=image, k=k, landcover=request)
        spec_id = f"image-{hash_bytes(image.tobytes())}"
    else:
        result = state.image_query(state.repo, sample_id=sample_id, k=k, landcover=request)
        spec_id = f"sample-{sample_id}"
    return respond(result, spec_id, set(), state.repo)


def landcover_of(repo: Repository | None, sample_ids: list[int]) -> dict[int, dict[str, float]]:
    """Land-cover proportions of the hits that have them; none without ``repo`` or a champion."""
    if repo is None or not sample_ids:
        return {}
    from samplehub.models.hir_model import ESFORMER, champion
    from samplehub.retrieval.context import open_context
    from samplehub.retrieval.landcover import hit_landcover

    if champion(repo.config, ESFORMER) is None:
        return {}
    return hit_landcover(repo, open_context(repo), sample_ids)


def decode_image(file: UploadFile, max_bytes: int) -> np.ndarray:
    """An upload as an RGB uint8 (3, H, W) array.

    Raises:
        UploadTooLargeError: the upload is over ``max_bytes`` (read no further than that).
        InvalidSampleError: the upload is not a readable image, or its header claims more
            pixels than any sample may hold (a decompression bomb).
    """
    data = file.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadTooLargeError(
            f"upload {file.filename!r} is over {max_bytes:,} bytes (max_upload_mb)")
    try:
        picture = Image.open(io.BytesIO(data))
        check_decoded_size(picture.width, picture.height, len(picture.getbands()),
                           f"upload {file.filename!r}")
        picture.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        raise InvalidSampleError(
            f"upload {file.filename!r} ({len(data)} bytes) is not a readable image: {exc}"
        ) from exc
    return np.asarray(picture.convert("RGB")).transpose(2, 0, 1).copy()


def hash_bytes(data: bytes) -> str:
    """A short content hash."""
    return hashlib.sha256(data).hexdigest()[:16]

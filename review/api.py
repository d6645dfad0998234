"""REST endpoints of the review page (contract: docs/api.md). Views parse and answer, nothing more.

Reads go through `review.selectors`, writes through `review.services`; this module only maps
their typed errors to HTTP: ClipNotFound/TrashNotFound 404, ReviewInputError 400
`{field: [msg]}`, ClipConflict 409 with the current entry, ClipIdTaken 409, a bad blob 422, and
(through s2s_trainer.exceptions) a locked capture file 503.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, services
from .audio import SAMPLE_RATE, ClipDecodeError, compute_peaks, decode_pcm, encode_audio, pcm_to_wav
from .export import FORMATS as EXPORT_FORMATS
from .export import ZipStreamTarget, write_export
from .filters import MAX_PAGE_SIZE, ORDERINGS, parse_filters
from .serializers import (
    EntryDetailSerializer,
    EntrySerializer,
    EntryUpdateSerializer,
    ErrorSerializer,
    PeaksQuerySerializer,
    PeaksSerializer,
    PurgedSerializer,
    PurgeSerializer,
    ReviewSerializer,
    StatsSerializer,
    TrashedSerializer,
    TrashSerializer,
)

AUDIO_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "mp3": "audio/mpeg"}
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")

FILTER_PARAMETERS = [
    OpenApiParameter("reviewed", str, enum=["0", "1"]),
    OpenApiParameter("trained", str, enum=["0", "1"]),
    OpenApiParameter("date_from", OpenApiTypes.DATE, description="first day (UTC), inclusive"),
    OpenApiParameter("date_to", OpenApiTypes.DATE, description="last day (UTC), inclusive"),
    OpenApiParameter("id_min", int),
    OpenApiParameter("id_max", int),
    OpenApiParameter("q", str, description="text contained in the transcript"),
    OpenApiParameter("has_problem", str, enum=["0", "1"]),
    OpenApiParameter("check", str, description="a quality check code (GET /api/quality/checks)"),
    OpenApiParameter("ordering", str, enum=list(ORDERINGS)),
]
ERRORS = {
    400: OpenApiResponse(description="invalid input: {field: [message]}"),
    404: ErrorSerializer,
    503: OpenApiResponse(ErrorSerializer, description="capture database locked; retry"),
}


class EntryPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


class JsonOnlyNegotiation(DefaultContentNegotiation):
    """`?format=` picks the audio encoding on the audio endpoint, not a DRF renderer."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _error(status: int, error: str, detail: str, **extra) -> Response:
    return Response({"error": error, "detail": detail, **extra}, status=status)


def entry_response(detail: selectors.ClipDetail, status: int = 200) -> Response:
    return Response(EntryDetailSerializer(detail).data, status=status, headers={"ETag": f'"{detail.version}"'})


class ReviewApiView(APIView):
    """Maps the service and selector errors to the contract's JSON answers."""

    def handle_exception(self, exc):
        if isinstance(exc, selectors.ClipNotFound):
            return _error(404, "not_found", f"Clip {exc.args[0]} does not exist (trashed, deleted or never captured).")
        if isinstance(exc, services.TrashNotFound):
            return _error(404, "not_found", f"Trash item {exc.args[0]} does not exist (purged or restored).")
        if isinstance(exc, services.ReviewInputError):
            return Response({exc.field: [exc.message]}, status=400)
        if isinstance(exc, services.ClipIdTaken):
            return _error(409, "id_taken", str(exc))
        if isinstance(exc, services.ClipConflict):
            current = selectors.clip_get(exc.clip_id, self.filters())
            return _error(409, "conflict", str(exc), current=EntryDetailSerializer(current).data)
        return super().handle_exception(exc)

    def filters(self):
        return parse_filters(self.request.query_params)


@extend_schema(parameters=FILTER_PARAMETERS, responses={200: EntrySerializer(many=True)})
class EntryListApi(ReviewApiView):
    def get(self, request):
        paginator = EntryPagination()
        page = paginator.paginate_queryset(selectors.clip_list(self.filters()), request, view=self)
        return paginator.get_paginated_response(EntrySerializer(page, many=True).data)


class EntryDetailApi(ReviewApiView):
    @extend_schema(parameters=FILTER_PARAMETERS, responses={200: EntryDetailSerializer, **ERRORS})
    def get(self, request, clip_id: int):
        detail = selectors.clip_get(clip_id, self.filters())
        if detail.measured is not None:
            services.clipmeta_save(clip_id, detail.measured)
        return entry_response(detail)

    @extend_schema(
        request=EntryUpdateSerializer,
        parameters=[OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, description='the ETag, e.g. "3"')],
        responses={200: EntryDetailSerializer, 409: OpenApiResponse(description="conflict: {error, detail, current}"), **ERRORS},
    )
    def put(self, request, clip_id: int):
        body = EntryUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        services.clip_update(
            clip_id, request.user, request.headers.get("If-Match") or data.get("version"),
            transcript=data.get("transcript"), is_reviewed=data.get("is_reviewed"),
            review_seconds=data.get("review_seconds"),
        )
        return entry_response(selectors.clip_get(clip_id, self.filters()))

    patch = put

    @extend_schema(responses={200: TrashedSerializer, **ERRORS})
    def delete(self, request, clip_id: int):
        trash_id = services.clip_trash(clip_id, request.user)
        return Response({"trash_id": trash_id, "clip_id": clip_id})


class EntryReviewApi(ReviewApiView):
    @extend_schema(request=ReviewSerializer, responses={200: EntryDetailSerializer, **ERRORS})
    def post(self, request, clip_id: int):
        body = ReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.clip_mark_reviewed(
            clip_id, request.user, request.headers.get("If-Match") or body.validated_data.get("version"),
            review_seconds=body.validated_data.get("review_seconds"),
        )
        return entry_response(selectors.clip_get(clip_id, self.filters()))


def _bad_audio(clip_id: int, blob, error: ClipDecodeError) -> Response:
    services.clipmeta_save(clip_id, selectors.ClipMeasure(
        blob_length=len(blob) if blob is not None else None, problem=error.code, problem_detail=str(error)
    ))
    return _error(422, "bad_audio", f"Clip {clip_id}: {error}", code=error.code)


def _ranged_response(request, data: bytes, content_type: str, etag: str, filename: str) -> HttpResponse:
    """200 with the whole body, or 206 for one satisfiable `Range: bytes=...`, or 416."""
    total, status, body, content_range = len(data), 200, data, None
    wanted = request.headers.get("Range", "").strip()
    if_range = request.headers.get("If-Range")
    m = _RANGE_RE.match(wanted) if wanted and (not if_range or if_range == etag) else None
    if m and (m.group(1) or m.group(2)):
        first, last = m.groups()
        if first == "":
            start, end = max(0, total - int(last)), total - 1
            if int(last) == 0:
                start = total  # "bytes=-0" asks for nothing: unsatisfiable
        else:
            start, end = int(first), min(int(last), total - 1) if last else total - 1
        if last and first and int(last) < int(first):
            pass  # a syntactically invalid range is ignored (RFC 9110 14.2)
        elif start >= total:
            resp = HttpResponse(status=416)
            resp["Content-Range"] = f"bytes */{total}"
            resp["Accept-Ranges"] = "bytes"
            return resp
        else:
            status, body, content_range = 206, data[start:end + 1], f"bytes {start}-{end}/{total}"
    resp = HttpResponse(body, status=status, content_type=content_type)
    resp["Content-Length"] = str(len(body))
    resp["Accept-Ranges"] = "bytes"
    resp["ETag"] = etag
    resp["Cache-Control"] = "private, no-cache"
    resp["Content-Disposition"] = f'{"attachment" if request.query_params.get("download") else "inline"}; filename="{filename}"'
    if content_range:
        resp["Content-Range"] = content_range
    return resp


def _etag_matches(request, etag: str) -> bool:
    sent = request.headers.get("If-None-Match", "")
    return any(tag.strip() in (etag, f"W/{etag}", "*") for tag in sent.split(",")) if sent else False


class EntryAudioApi(ReviewApiView):
    content_negotiation_class = JsonOnlyNegotiation

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=list(AUDIO_TYPES)), OpenApiParameter("download", str)],
        responses={(200, "audio/wav"): OpenApiTypes.BINARY, 206: OpenApiTypes.BINARY, 304: None,
                   415: ErrorSerializer, 422: ErrorSerializer, **ERRORS},
    )
    def get(self, request, clip_id: int):
        fmt = request.query_params.get("format", "wav").lower()
        if fmt not in AUDIO_TYPES:
            return _error(400, "bad_format", f"Unknown audio format {fmt!r}: choose one of {', '.join(AUDIO_TYPES)}.")
        version, length = selectors.clip_audio_tag(clip_id)
        etag = f'"a{clip_id}-{version}-{length}-{fmt}"'
        if _etag_matches(request, etag):
            resp = HttpResponse(status=304)
            resp["ETag"] = etag
            return resp
        blob, version = selectors.clip_blob(clip_id)
        etag = f'"a{clip_id}-{version}-{len(blob) if blob is not None else None}-{fmt}"'
        try:
            pcm = decode_pcm(blob, max_seconds=settings.S2S_MAX_CLIP_SECONDS)
        except ClipDecodeError as e:
            return _bad_audio(clip_id, blob, e)
        if fmt == "wav":
            data = pcm_to_wav(pcm)
        else:
            try:
                data = encode_audio(pcm.astype(np.float32) / 32768.0, fmt)
            except ValueError as e:
                return _error(415, "unsupported_format", f"Cannot encode {fmt} here: {e}. Use wav or flac.")
        return _ranged_response(request, data, AUDIO_TYPES[fmt], etag, f"clip-{clip_id}.{fmt}")


class EntryPeaksApi(ReviewApiView):
    @extend_schema(parameters=[PeaksQuerySerializer], responses={200: PeaksSerializer, 422: ErrorSerializer, **ERRORS})
    def get(self, request, clip_id: int):
        query = PeaksQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        width = query.validated_data["width"]
        blob, _ = selectors.clip_blob(clip_id)
        try:
            pcm = decode_pcm(blob, max_seconds=settings.S2S_MAX_CLIP_SECONDS)
        except ClipDecodeError as e:
            return _bad_audio(clip_id, blob, e)
        samples = pcm.astype(np.float32) / 32768.0
        return Response({"width": width, "duration_s": round(len(samples) / SAMPLE_RATE, 4),
                         "peaks": compute_peaks(samples, width)})


class StatsApi(ReviewApiView):
    @extend_schema(responses={200: StatsSerializer})
    def get(self, request):
        return Response(selectors.review_stats())


class TrashListApi(ReviewApiView):
    @extend_schema(responses={200: TrashSerializer(many=True)})
    def get(self, request):
        paginator = EntryPagination()
        page = paginator.paginate_queryset(selectors.trash_list(), request, view=self)
        return paginator.get_paginated_response(TrashSerializer(page, many=True).data)


class TrashItemApi(ReviewApiView):
    @extend_schema(responses={200: PurgedSerializer, **ERRORS})
    def delete(self, request, trash_id: int):
        services.trash_purge_one(trash_id)
        return Response({"purged": 1})


class TrashRestoreApi(ReviewApiView):
    @extend_schema(request=None, responses={200: EntryDetailSerializer, 409: ErrorSerializer, **ERRORS})
    def post(self, request, trash_id: int):
        clip_id = services.clip_restore(trash_id, request.user)
        return entry_response(selectors.clip_get(clip_id))


class TrashPurgeApi(ReviewApiView):
    @extend_schema(request=PurgeSerializer, responses={200: PurgedSerializer, **ERRORS})
    def post(self, request):
        body = PurgeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response({"purged": services.trash_purge(older_than_days=body.validated_data.get("older_than_days"))})


def export_response(request, ids: list[int], fmt: str) -> StreamingHttpResponse:
    """A zip of these clips in `fmt` (review.export), streamed as it is written.

    `X-Export-Clips` says how many clips are coming, so a client can show progress; the body
    grows one clip at a time and only a few blobs are in memory at once.
    """
    name = f"s2s-export-{fmt}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    chunks = write_export(selectors.export_clips(ids), fmt, ZipStreamTarget(),
                          max_seconds=settings.S2S_MAX_CLIP_SECONDS)
    if isinstance(getattr(request, "_request", request), ASGIRequest):
        chunks = _async_chunks(chunks)  # else Django would collect the whole zip in memory first
    resp = StreamingHttpResponse(chunks, content_type="application/zip")
    resp["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    resp["X-Export-Clips"] = str(len(ids))
    return resp


async def _async_chunks(chunks):
    """Feed a sync generator to an ASGI server one chunk at a time (same thread each step)."""
    done = object()
    step = sync_to_async(lambda: next(chunks, done), thread_sensitive=True)
    while (chunk := await step()) is not done:
        yield chunk


class ExportApi(ReviewApiView):
    content_negotiation_class = JsonOnlyNegotiation

    @extend_schema(
        parameters=[*FILTER_PARAMETERS, OpenApiParameter("format", str, enum=list(EXPORT_FORMATS),
                                                         description="jsonl (NeMo, default), csv or hf (datasets)")],
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
    )
    def get(self, request):
        fmt = request.query_params.get("format", "jsonl").lower()
        if fmt not in EXPORT_FORMATS:
            return _error(400, "bad_format", f"Unknown export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}.")
        return export_response(request, selectors.clip_ids(self.filters()), fmt)

"""Reading the robot: the status snapshot, its live stream, the alerts, the site map and the health check."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from web.context import WebContext, error, finite, json_reply


def router(ctx: WebContext, *, site_geojson: dict[str, Any] | None, stream_interval_s: float) -> APIRouter:
    """GET /api/status, /api/events, /api/alerts, /api/site and /healthz."""
    r = APIRouter()

    @r.get("/api/status")
    async def status(request: Request) -> JSONResponse:
        if not ctx.may_read(request):
            return ctx.unauthorized()
        t = ctx.telemetry.latest()
        if t is None:
            return json_reply(ctx.no_telemetry(), status_code=503)
        return json_reply(ctx.status_payload(t, ctx.identify(request)), headers={"Cache-Control": "no-store"})

    @r.get("/api/events")
    async def events(request: Request) -> Response:
        if not ctx.may_read(request):
            return ctx.unauthorized()
        client = ctx.identify(request)
        if not ctx.open_stream():
            return ctx.too_many_streams()
        state = request.app.state

        async def stream() -> AsyncIterator[str]:
            try:
                # retry: how soon the browser's EventSource reconnects after a dropped mobile link.
                yield "retry: 2000\n\n"
                while not state.closing:
                    t = ctx.telemetry.latest()
                    if t is None:
                        yield f"event: waiting\ndata: {json.dumps(ctx.no_telemetry())}\n\n"
                    else:
                        data = json.dumps(finite(ctx.status_payload(t, client)), separators=(",", ":"))
                        yield f"data: {data}\n\n"
                    await asyncio.sleep(stream_interval_s)
            finally:
                ctx.counters.streams_open -= 1

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @r.get("/api/alerts")
    async def alerts(request: Request, n: Annotated[int, Query(ge=1, le=100)] = 20) -> JSONResponse:
        if not ctx.may_read(request):
            return ctx.unauthorized()
        now = ctx.clock()
        items = [
            {
                "kind": a.kind,
                "severity": str(a.severity),
                "message": a.message,
                "at": a.at,
                "age_s": now - a.at,
            }
            for a in ctx.outbox.recent(n)
        ]
        return json_reply({"alerts": items, "dropped": ctx.outbox.dropped})

    @r.get("/api/site")
    async def site(request: Request) -> JSONResponse:
        if not ctx.may_read(request):
            return ctx.unauthorized()
        if site_geojson is None:
            return error(404, "no site map configured (robot.site)")
        return json_reply(site_geojson, headers={"Cache-Control": "public, max-age=3600"})

    @r.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        if not ctx.may_read(request):
            return json_reply({"ok": True})  # alive; the details are for logged-in operators
        t = ctx.telemetry.latest()
        age = None if t is None else max(0.0, ctx.clock() - t.at)
        return json_reply(
            {
                "ok": True,
                "telemetry": t is not None,
                "telemetry_age_s": age,
                "stale": age is None or age > ctx.stale_after_s,
                "counters": ctx.counters.as_dict(),
                "queue_dropped": ctx.commands.dropped,
            }
        )

    return r

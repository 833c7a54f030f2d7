"""Logging in and out of the dashboard, and who the page is logged in as."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from robot.core.types import Alert, Severity
from robot.passwords import verify_password
from web.auth import COOKIE
from web.context import WebContext, client_ip, describe, error, is_json, json_reply, read_body


class LoginBody(BaseModel):
    """The dashboard password."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    password: Annotated[str, Field(max_length=256)]


_LOGIN_ADAPTER: TypeAdapter[Any] = TypeAdapter(LoginBody)


def router(ctx: WebContext) -> APIRouter:
    """GET /api/session, POST /api/login, POST /api/logout."""
    r = APIRouter()
    counters = ctx.counters

    @r.get("/api/session")
    async def session_info(request: Request) -> JSONResponse:
        client = ctx.identify(request)
        return json_reply(
            {
                "login_required": bool(ctx.password_hash),
                "logged_in": client is not None and client.id.startswith("session:"),
                "may_command": client is not None,
                "you": client.label if client is not None else None,
            },
            headers={"Cache-Control": "no-store"},
        )

    @r.post("/api/login")
    async def login(request: Request) -> JSONResponse:
        refused = ctx.cross_site(request)
        if refused is not None:
            return refused
        if not ctx.password_hash:
            return error(404, "no login on this robot: web.password_hash is not set")
        ip = client_ip(request.scope)
        wait = ctx.limiter.retry_after(ip)
        if wait > 0:
            counters.logins_refused += 1
            return error(
                429, f"too many wrong passwords: try again in {wait:.0f} s", {"Retry-After": f"{wait:.0f}"}
            )
        if not is_json(request):
            counters.commands_wrong_type += 1
            return error(415, "send the password as application/json")
        body = await read_body(request, 1024)
        if body is None:
            return error(413, "login body larger than 1024 bytes")
        try:
            creds = _LOGIN_ADAPTER.validate_json(body)
        except ValidationError as err:
            return error(422, f"bad login: {describe(err)}")
        async with ctx.login_slots:  # scrypt takes 16 MiB and tens of ms: one check at a time
            ok = await asyncio.to_thread(verify_password, creds.password, ctx.password_hash)
        if not ok:
            counters.logins_failed += 1
            if ctx.limiter.failed(ip):
                message = f"dashboard: too many wrong passwords (last from {ip}); logins paused for a while"
                ctx.outbox.add(Alert("login_lockout", Severity.WARNING, message, ctx.clock()))
            return error(401, "wrong password")
        counters.logins += 1
        cookie = ctx.sessions.create(ip)
        resp = json_reply({"ok": True})
        resp.set_cookie(
            COOKIE,
            cookie,
            max_age=int(ctx.sessions.lifetime_s),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return resp

    @r.post("/api/logout")
    async def logout(request: Request) -> JSONResponse:
        refused = ctx.cross_site(request)
        if refused is not None:
            return refused
        client = ctx.identify(request)
        if client is not None:
            ctx.lease.release(client.id)
        ctx.sessions.end(request.cookies.get(COOKIE))
        resp = json_reply({"ok": True})
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return resp

    return r

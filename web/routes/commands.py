"""Commanding the robot: every command through the one queue, and STOP, which needs no login."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from robot.core.types import Command, CommandKind, Mode
from web.context import MAX_BODY_BYTES, WebContext, describe, error, is_json, json_reply, read_body

Speed = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]


class _StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class EstopBody(BaseModel):
    """Emergency stop; extra fields are ignored on purpose, so a sloppy client can still stop the robot."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    kind: Literal["estop"]


class ResetBody(_StrictBody):
    """Clear an e-stop or fault (the supervisor decides whether it is safe)."""

    kind: Literal["reset"]


class TrayEmptiedBody(_StrictBody):
    """The operator has emptied the litter tray."""

    kind: Literal["tray_emptied"]


class SetModeBody(_StrictBody):
    """Switch between auto, manual and paused."""

    kind: Literal["set_mode"]
    mode: Mode


class DriveBody(_StrictBody):
    """One manual drive tick: wheel speeds in [-1, 1]; the supervisor's deadman stops when ticks stop."""

    kind: Literal["drive"]
    left: Speed
    right: Speed


class TakeOverBody(_StrictBody):
    """Take the driving lease from whoever holds it (the wheels are braked first)."""

    kind: Literal["take_over"]


CommandBody = Annotated[
    EstopBody | ResetBody | TrayEmptiedBody | SetModeBody | DriveBody | TakeOverBody,
    Field(discriminator="kind"),
]
_COMMAND_ADAPTER: TypeAdapter[Any] = TypeAdapter(CommandBody)


def _is_estop(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # deeply nested JSON is just not an e-stop
        return False
    return isinstance(data, dict) and data.get("kind") == "estop"


def router(ctx: WebContext) -> APIRouter:
    """POST /api/command and POST /api/estop."""
    r = APIRouter()
    counters, lease, clock = ctx.counters, ctx.lease, ctx.clock

    @r.post("/api/command")
    async def command(request: Request) -> JSONResponse:
        refused = ctx.cross_site(request)
        if refused is not None:
            return refused
        if not is_json(request):
            counters.commands_wrong_type += 1
            return error(415, "commands must be sent as application/json")
        body = await read_body(request, MAX_BODY_BYTES)
        if body is None:
            counters.commands_too_large += 1
            return error(413, f"command body larger than {MAX_BODY_BYTES} bytes")
        if _is_estop(body):
            return ctx.do_estop(request)
        client = ctx.identify(request)
        if client is None:
            return ctx.unauthorized()
        try:
            parsed = _COMMAND_ADAPTER.validate_json(body)
        except ValidationError as err:
            counters.commands_invalid += 1
            return error(422, f"bad command: {describe(err)}")
        kind = parsed.kind
        if kind == "take_over":
            lease.take(client.id, client.label)
            return ctx.enqueue(Command(CommandKind.DRIVE, at=clock(), left=0.0, right=0.0, source="web"))
        held = lease.blocks(client.id)
        if held is not None:
            counters.lease_conflicts += 1
            return json_reply(
                {
                    "error": f"{held.label} is driving; you may press STOP, or take over explicitly",
                    "driver": ctx.lease_json(client),
                },
                status_code=409,
            )
        if isinstance(parsed, SetModeBody):
            if parsed.mode is Mode.MANUAL:
                lease.take(client.id, client.label)
            else:
                lease.release(client.id)
            return ctx.enqueue(Command(CommandKind.SET_MODE, at=clock(), mode=parsed.mode, source="web"))
        if isinstance(parsed, DriveBody):
            lease.take(client.id, client.label)
            return ctx.enqueue(
                Command(CommandKind.DRIVE, at=clock(), left=parsed.left, right=parsed.right, source="web")
            )
        return ctx.enqueue(Command(CommandKind(kind), at=clock(), source="web"))

    @r.post("/api/estop")
    async def estop_now(request: Request) -> JSONResponse:
        # Nothing to parse, nothing to refuse but another site: whatever the body says, this only stops.
        refused = ctx.cross_site(request)
        if refused is not None:
            return refused
        return ctx.do_estop(request)

    return r

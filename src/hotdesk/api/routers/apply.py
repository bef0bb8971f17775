"""Declarative apply over HTTP (P3): ``POST /api/v1/apply`` with Kubernetes-style documents."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from hotdesk.api.deps import AdminActor, Ctx
from hotdesk.services.apply import ApplyError, apply_documents

router = APIRouter(tags=["apply"])


class ApplyCreate(BaseModel):
    """A batch of documents ``{kind, metadata: {name}, spec}``, applied all-or-nothing-checked."""

    model_config = ConfigDict(extra="forbid")

    documents: list[Any] = Field(
        description="Organization, User, Group, Provider, Template and Pool documents; "
        "applied in that order whatever their order here"
    )


class ApplyResultRead(BaseModel):
    """What applying one document did."""

    kind: str
    name: str
    action: Literal["created", "updated", "unchanged"]
    index: int = Field(description="position of the document in the request, from 1")


class ApplyRead(BaseModel):
    """One result per document, in the order they were applied."""

    results: list[ApplyResultRead]


class ApplyDocumentRead(BaseModel):
    """The document an error is about."""

    index: int
    kind: str | None
    name: str | None


class ApplyErrorRead(BaseModel):
    """Why a batch was refused: the message names the document and the field."""

    detail: str
    field: str | None
    document: ApplyDocumentRead


@router.post(
    "/apply",
    response_model=ApplyRead,
    responses={422: {"model": ApplyErrorRead, "description": "a document is invalid"}},
    summary="Apply declarative documents idempotently",
)
def apply(body: ApplyCreate, ctx: Ctx, actor: AdminActor) -> ApplyRead | JSONResponse:
    """Create or update every document's object; unchanged objects are reported as such.

    The whole batch is checked before anything changes: one invalid document refuses it
    with 422 naming the document (``document.index`` counts from 1) and the field.
    """
    try:
        results = apply_documents(ctx, actor, body.documents)
    except ApplyError as exc:
        error = ApplyErrorRead(
            detail=str(exc),
            field=exc.field,
            document=ApplyDocumentRead(index=exc.index, kind=exc.kind, name=exc.name),
        )
        return JSONResponse(error.model_dump(), status_code=422)
    return ApplyRead(
        results=[
            ApplyResultRead(kind=r.kind, name=r.name, action=r.action, index=r.index)
            for r in results
        ]
    )

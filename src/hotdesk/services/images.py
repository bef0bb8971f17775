"""T3: published base images, recorded before and after the reconciler publishes them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hotdesk.db.models import (
    DesktopRow,
    PoolRow,
    PublishedImageRow,
    TemplateRow,
)
from hotdesk.domain.states import DesktopState
from hotdesk.services.context import BrokerContext
from hotdesk.services.events import record_event

ACTOR = "system:publisher"


@dataclass(frozen=True)
class ImageState:
    """What the broker knows of one published image."""

    provider_id: str
    revision_id: str
    datastore: str
    state: str
    ref: str | None
    error: str | None = None


def published_ref(
    ctx: BrokerContext, provider_id: str, revision_id: str, datastore: str | None
) -> str | None:
    """The ready base image of a revision on a datastore, if it is published."""
    with ctx.db.read() as session:
        row = _row(session, provider_id, revision_id, datastore or "")
        return row.ref if row is not None and row.state == "ready" else None


def _row(
    session: Session, provider_id: str, revision_id: str, datastore: str
) -> PublishedImageRow | None:
    return session.scalar(
        select(PublishedImageRow).where(
            PublishedImageRow.provider_id == provider_id,
            PublishedImageRow.revision_id == revision_id,
            PublishedImageRow.datastore == datastore,
        )
    )


def record_publishing(
    ctx: BrokerContext,
    provider_id: str,
    revision_id: str,
    datastore: str | None,
    tenant_id: str,
    pool_id: str,
) -> None:
    """Write down that a publish is starting (visible as progress in the pool status)."""
    with ctx.db.write() as session:
        now = ctx.now()
        row = _row(session, provider_id, revision_id, datastore or "")
        if row is None:
            row = PublishedImageRow(
                provider_id=provider_id,
                revision_id=revision_id,
                datastore=datastore or "",
                created_at=now,
            )
            session.add(row)
        row.state, row.error, row.updated_at = "publishing", None, now
        record_event(
            session,
            tenant_id=tenant_id,
            actor=ACTOR,
            kind="image-publishing",
            now=now,
            pool_id=pool_id,
            reason=f"publishing the image on datastore {datastore or '(default)'}",
            data={"revision_id": revision_id},
        )


def record_published(
    ctx: BrokerContext,
    provider_id: str,
    revision_id: str,
    datastore: str | None,
    *,
    ref: str | None,
    size_bytes: int | None,
    error: str | None,
    tenant_id: str,
    pool_id: str,
) -> None:
    """Write down a finished (or failed) publish."""
    with ctx.db.write() as session:
        now = ctx.now()
        row = _row(session, provider_id, revision_id, datastore or "")
        if row is None:
            return
        row.state = "failed" if error else "ready"
        row.ref, row.size_bytes, row.error, row.updated_at = ref, size_bytes, error, now
        what = f"failed: {error}" if error else f"ready at {ref}"
        record_event(
            session,
            tenant_id=tenant_id,
            actor=ACTOR,
            kind="image-published",
            now=now,
            pool_id=pool_id,
            reason=f"image publish {what}",
            data={"revision_id": revision_id, "datastore": datastore},
        )


def images_of_pool(session: Session, pool: PoolRow) -> list[ImageState]:
    """Published images of the revisions the pool's desktops use or its template will use."""
    revisions = set(
        session.scalars(
            select(DesktopRow.template_revision_id)
            .where(DesktopRow.pool_id == pool.id, DesktopRow.state != DesktopState.DELETED.value)
            .distinct()
        )
    )
    template = session.get(TemplateRow, pool.template_id)
    if template is not None and template.current_revision_id:
        revisions.add(template.current_revision_id)
    rows = session.scalars(
        select(PublishedImageRow).where(
            PublishedImageRow.provider_id == pool.provider_id,
            PublishedImageRow.revision_id.in_(revisions),
        )
    )
    return [
        ImageState(r.provider_id, r.revision_id, r.datastore, r.state, r.ref, r.error) for r in rows
    ]


def unused_images(ctx: BrokerContext, provider_id: str) -> list[ImageState]:
    """Published images no live desktop uses and no live pool will use (safe to remove)."""
    with ctx.db.read() as session:
        keep = _revisions_in_use(session, provider_id) | _current_revisions(session, provider_id)
        rows = session.scalars(
            select(PublishedImageRow).where(
                PublishedImageRow.provider_id == provider_id,
                PublishedImageRow.revision_id.not_in(keep)
                if keep
                else PublishedImageRow.id.is_not(None),
                PublishedImageRow.state.in_(["ready", "failed"]),
            )
        )
        return [
            ImageState(r.provider_id, r.revision_id, r.datastore, r.state, r.ref, r.error)
            for r in rows
        ]


def forget_image(ctx: BrokerContext, image: ImageState) -> None:
    """Drop the record of a removed base image."""
    with ctx.db.write() as session:
        row = _row(session, image.provider_id, image.revision_id, image.datastore)
        if row is not None:
            session.delete(row)


def _revisions_in_use(session: Session, provider_id: str) -> set[str]:
    return set(
        session.scalars(
            select(DesktopRow.template_revision_id)
            .where(
                DesktopRow.provider_id == provider_id,
                DesktopRow.state != DesktopState.DELETED.value,
            )
            .distinct()
        )
    )


def _current_revisions(session: Session, provider_id: str) -> set[str]:
    return {
        r
        for r in session.scalars(
            select(TemplateRow.current_revision_id)
            .join(PoolRow, PoolRow.template_id == TemplateRow.id)
            .where(PoolRow.provider_id == provider_id, PoolRow.deleted_at.is_(None))
        )
        if r
    }

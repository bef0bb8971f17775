"""T3: publish a template revision's image once per datastore before cloning from it."""

from __future__ import annotations

import asyncio

from hotdesk.domain.errors import ProviderError
from hotdesk.domain.names import TAG_BROKER
from hotdesk.providers.base import PublishedImage, PublishRequest
from hotdesk.providers.guard import GuardedProvider
from hotdesk.services import images
from hotdesk.services.context import BrokerContext
from hotdesk.services.reconcile import CreateJob


class Publisher:
    """Publishes each (provider, revision, datastore) once, even with many creates waiting."""

    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    async def ensure_published(self, driver: GuardedProvider, job: CreateJob) -> str:
        """The published base to clone ``job`` from; publishes it first if needed.

        Raises the driver's ``ProviderError`` when publishing fails (the create then backs off).
        """
        datastore = job.request.datastore
        key = (job.provider_id, job.revision_id, datastore or "")
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            ref = await asyncio.to_thread(
                images.published_ref, self.ctx, job.provider_id, job.revision_id, datastore
            )
            if ref is not None:
                return ref
            return await self._publish(driver, job)

    async def _publish(self, driver: GuardedProvider, job: CreateJob) -> str:
        datastore = job.request.datastore
        where = (job.provider_id, job.revision_id, datastore)
        await asyncio.to_thread(
            images.record_publishing, self.ctx, *where, job.tenant_id, job.pool_id
        )
        request = PublishRequest(
            image=job.request.template.image,
            revision_id=job.revision_id,
            datastore=datastore,
            tags={TAG_BROKER: self.ctx.broker_id},
        )
        try:
            published = await driver.publish_image(request)
        except ProviderError as exc:
            await asyncio.to_thread(
                images.record_published,
                self.ctx,
                *where,
                ref=None,
                size_bytes=None,
                error=str(exc),
                tenant_id=job.tenant_id,
                pool_id=job.pool_id,
            )
            raise
        await asyncio.to_thread(
            images.record_published,
            self.ctx,
            *where,
            ref=published.ref,
            size_bytes=published.size_bytes,
            error=None,
            tenant_id=job.tenant_id,
            pool_id=job.pool_id,
        )
        return published.ref


async def remove_unused_images(
    ctx: BrokerContext, provider_id: str, driver: GuardedProvider
) -> int:
    """Delete published bases no desktop uses and no pool will use; returns how many went."""
    if not driver.supports_publish:
        return 0
    removed = 0
    for image in await asyncio.to_thread(images.unused_images, ctx, provider_id):
        try:
            if image.ref:
                await driver.unpublish_image(
                    PublishedImage(ref=image.ref, datastore=image.datastore or None)
                )
        except ProviderError:
            continue  # still in use on the platform, or unreachable: try next sweep
        await asyncio.to_thread(images.forget_image, ctx, image)
        removed += 1
    return removed

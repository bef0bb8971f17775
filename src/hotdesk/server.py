"""One broker process: database, bootstrap, API and reconciler together (``hotdesk serve``)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from hotdesk.api.app import create_app
from hotdesk.db.engine import Database
from hotdesk.db.migrate import upgrade
from hotdesk.observability.logs import configure_logging
from hotdesk.reconciler.loop import Reconciler
from hotdesk.services import bootstrap
from hotdesk.services.context import BrokerContext
from hotdesk.services.demo import ensure_demo
from hotdesk.settings import Settings

log = logging.getLogger("hotdesk.server")


@dataclass
class Broker:
    """A ready-to-run broker: its context, what bootstrap did and its reconciler."""

    ctx: BrokerContext
    settings: Settings
    boot: bootstrap.Bootstrap
    reconciler: Reconciler
    demo_note: str | None = None


def prepare_broker(settings: Settings, *, demo: bool | None = None) -> Broker:
    """Migrate the database, create the broker id, default tenant, admin and demo pool."""
    url = settings.database_url()
    upgrade(url)
    if settings.reconciler.agent_url is None:
        settings.reconciler.agent_url = f"http://10.0.2.2:{settings.api.port}"
    db = Database(url)
    ctx = BrokerContext(
        db=db, broker_id=bootstrap.ensure_broker_id(db), settings=settings.reconciler
    )
    boot = bootstrap.ensure_default_tenant(ctx)
    note = None
    if settings.demo if demo is None else demo:
        note = ensure_demo(
            ctx, boot.tenant_id, platform=settings.demo_platform, data_dir=settings.data_dir
        )
    return Broker(ctx=ctx, settings=settings, boot=boot, reconciler=Reconciler(ctx), demo_note=note)


def build_app(broker: Broker) -> FastAPI:
    """The API app with the reconciler running for the app's lifetime."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(broker.reconciler.run_forever(stop))
        try:
            yield
        finally:
            stop.set()
            await task
            await broker.reconciler.drivers.close()

    return create_app(broker.ctx, lifespan=lifespan, settings=broker.settings)


def serve(settings: Settings, *, announce: Callable[[str], None] = print) -> None:
    """Run the broker until interrupted, announcing its URL and first-start credential."""
    configure_logging(json_lines=settings.log_format != "text")
    broker = prepare_broker(settings)
    url = f"http://{settings.api.host}:{settings.api.port}"
    announce(f"hotdesk broker {broker.ctx.broker_id} listening on {url}")
    announce(f"  database: {settings.safe_database_url()}")
    if broker.boot.admin_password:
        announce(
            f"  first start: tenant 'default', user '{broker.boot.admin_username}', "
            f"password '{broker.boot.admin_password}' (shown once; change it)"
        )
    if broker.demo_note:
        announce(f"  {broker.demo_note}")
    app = build_app(broker)
    gc.collect()
    gc.freeze()  # start-up objects never need collecting: avoids ~90 ms full-collection pauses
    config = uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_level="info",
        log_config=None,  # keep our JSON logging
        access_log=False,
        timeout_graceful_shutdown=10,  # open live streams must not hold a stop (leases)
    )
    uvicorn.Server(config).run()

"""The portal and the admin console in a real browser (headless Chromium via Playwright).

One broker for the module: ``create_app(ctx)`` served by uvicorn, with ``Reconciler.run_forever``
in the same background thread's event loop, on a free port. Pool ``vm`` runs REAL VMs on
libvirt/QEMU (the demo guest, as in ``tests/providers/libvirt_support.py``); pool ``kiosk`` runs
on the ``sim`` SIMULATOR (no real VMs) for the waiting-queue test. The tests run in file order
and share the broker: later ones use desktops earlier ones made. Screenshots go to
``test-artifacts/e2e-portal/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotdesk.api.app import create_app
from hotdesk.api.routers.web import novnc_dir
from hotdesk.db.engine import Database
from hotdesk.db.migrate import upgrade
from hotdesk.domain.pools import PoolSpec
from hotdesk.reconciler.loop import Reconciler
from hotdesk.services import bootstrap, catalog, pools
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.directory import UserInput, save_user
from hotdesk.services.pools import EntitlementLine
from hotdesk.settings import ReconcilerSettings

CHROMIUM = Path(os.environ.get("HOTDESK_TEST_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e-portal"
PASSWORD = "e2e-secret-pass"
USERS = ("alice", "bob", "carol", "dave", "erin")
TIMEOUT_MS = 30_000


def browser_unavailable() -> str | None:
    """``None`` if the browser suite can run, else why not."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} missing: run scripts/setup-web.sh (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "Python playwright missing: pip install -e '.[dev]'"
    if novnc_dir() is None:
        return "noVNC missing (node_modules/@novnc/novnc): run scripts/setup-web.sh (npm ci)"
    if not any(importlib.util.find_spec(m) for m in ("websockets", "wsproto")):
        return "uvicorn has no websocket library (websockets or wsproto) for the console proxy"
    return None


def libvirt_unavailable() -> str | None:
    """``None`` if real VMs can run here, else why not."""
    from tests.providers.libvirt_support import libvirt_available

    return libvirt_available()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveBroker:
    """The running broker: its URL, context, admin password and whether ``vm`` is real."""

    url: str = ""
    ctx: BrokerContext | None = None
    admin_password: str = ""
    has_vms: bool = False
    error: BaseException | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def login(self, username: str) -> httpx.Client:
        """An API client signed in as ``username``."""
        token = httpx.post(
            f"{self.url}/api/v1/auth/login",
            json={"tenant": "default", "username": username, "password": PASSWORD},
        ).json()["token"]
        return httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {token}"}
        )


def _run_broker(live: LiveBroker, db_dir: Path, port: int) -> None:
    try:
        asyncio.run(_serve(live, db_dir, port))
    except BaseException as exc:  # noqa: BLE001 - reported to the test thread
        live.error = exc
        live.ready.set()


async def _serve(live: LiveBroker, db_dir: Path, port: int) -> None:
    import uvicorn

    async with contextlib.AsyncExitStack() as stack:
        testbed = None
        if libvirt_unavailable() is None:
            from tests.providers.libvirt_support import libvirt_testbed

            testbed = await stack.enter_async_context(libvirt_testbed())
        ctx = await asyncio.to_thread(_prepare, live, db_dir, testbed)
        app = create_app(ctx)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        reconciler, stop = Reconciler(ctx), asyncio.Event()
        tasks = [
            asyncio.create_task(reconciler.run_forever(stop)),
            asyncio.create_task(server.serve()),
        ]
        for _ in range(600):  # up to 30 s
            if server.started:
                break
            await asyncio.sleep(0.05)
        live.url, live.ctx = f"http://127.0.0.1:{port}", ctx
        live.ready.set()
        await asyncio.to_thread(live.stop.wait)
        server.should_exit = True
        stop.set()
        await asyncio.gather(*tasks)
        await reconciler.drivers.close()


def _prepare(live: LiveBroker, db_dir: Path, testbed: Any) -> BrokerContext:
    url = f"sqlite:///{db_dir / 'hotdesk.db'}"
    upgrade(url)
    db = Database(url)
    broker_id = testbed.broker_id if testbed else bootstrap.ensure_broker_id(db)
    settings = ReconcilerSettings(interval_seconds=1.0, backoff_base_seconds=0.5)
    ctx = BrokerContext(db=db, broker_id=broker_id, settings=settings)
    boot = bootstrap.ensure_default_tenant(ctx)
    live.admin_password = boot.admin_password or ""
    admin = bootstrap.admin_actor(ctx, boot.tenant_id)
    for name in USERS:
        save_user(ctx, admin, UserInput(username=name, password=PASSWORD, role="user"))
    save_user(ctx, admin, UserInput(username="admin", password=PASSWORD))
    live.admin_password = PASSWORD
    platform = f"e2e-{os.getpid()}-{time.monotonic_ns()}"
    catalog.save_provider(
        ctx, admin, "sim", kind="sim", config={"platform": platform, "boot_latency": 0.3}
    )
    catalog.save_template(ctx, admin, "kiosk", {"image": "kiosk", "vcpus": 1, "memory_mib": 512})
    _pool(ctx, admin, "kiosk", "sim", "kiosk", max_desktops=1, users=["carol", "dave", "erin"])
    if testbed is not None:
        _libvirt_pool(ctx, admin, testbed)
        live.has_vms = True
    return ctx


def _libvirt_pool(ctx: BrokerContext, admin: Actor, testbed: Any) -> None:
    config = testbed.config
    catalog.save_provider(
        ctx,
        admin,
        "kvm",
        kind="libvirt",
        config={
            "uris": list(config.uris),
            "datastores": list(config.datastores),
            "storage_root": str(config.storage_root),
            "console_log_dir": str(config.console_log_dir),
            "shutdown_timeout": 5.0,
        },
    )
    spec = asdict(testbed.image.template_spec(memory_mib=160))
    spec["networks"], spec["security_groups"] = list(spec["networks"]), []
    catalog.save_template(ctx, admin, "demo", spec)
    pattern = f"hdt-{testbed.run_id}-vm-{{SEQUENCE}}"
    _pool(ctx, admin, "vm", "kvm", "demo", max_desktops=2, users=["alice", "bob"], pattern=pattern)


def _pool(
    ctx: BrokerContext,
    admin: Actor,
    name: str,
    provider: str,
    template: str,
    *,
    max_desktops: int,
    users: list[str],
    pattern: str | None = None,
) -> None:
    spec = PoolSpec(
        name=name,
        provider=provider,
        template=template,
        max_desktops=max_desktops,
        warm_desktops=1,
        retention=timedelta(minutes=10),
        name_pattern=pattern or f"{name}-{{SEQUENCE}}",
        display_name_pattern=f"{name.capitalize()} desktop {{SEQUENCE}}",
    )
    pools.save_pool(ctx, admin, spec)
    pools.set_entitlements(ctx, admin, name, [EntitlementLine("user", u) for u in users])


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    """The broker (API + reconciler) in a background thread, on a free port."""
    reason = browser_unavailable()
    if reason is not None:
        pytest.skip(reason)
    live = LiveBroker()
    thread = threading.Thread(
        target=_run_broker,
        args=(live, tmp_path_factory.mktemp("e2e-portal"), free_port()),
        daemon=True,
    )
    thread.start()
    live.ready.wait(180)
    if live.error is not None or not live.url:
        pytest.fail(f"the broker did not start: {live.error!r}")
    yield live
    live.stop.set()
    thread.join(120)


@pytest.fixture(scope="module")
def browser(broker: LiveBroker) -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (never ``playwright install``)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def vms(broker: LiveBroker) -> LiveBroker:
    """Skip unless pool ``vm`` runs real VMs; wait for its warm desktop to be ready."""
    if not broker.has_vms:
        pytest.skip(libvirt_unavailable() or "libvirt unavailable")
    with broker.login("admin") as admin:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = admin.get("/pools/vm/status").json()
            if status["ready"] + status["assigned_connected"] + status["assigned_disconnected"]:
                return broker
            time.sleep(0.5)
    pytest.fail(f"no desktop of pool vm became ready: {status}")


def new_page(browser: Any, broker: LiveBroker, path: str = "/") -> Any:
    """A fresh browser context (own sessionStorage) on ``path``."""
    context = browser.new_context(viewport={"width": 1180, "height": 760})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(broker.url + path)
    return page


def sign_in(page: Any, username: str, password: str = PASSWORD) -> None:
    """Fill and submit the sign-in form."""
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def card(page: Any, pool: str) -> Any:
    """The portal card of a pool."""
    return page.locator(f'li.card[data-pool="{pool}"]')


def shot(page: Any, name: str) -> None:
    """Save a screenshot under test-artifacts/e2e-portal/."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


LIT_PIXELS = """() => {
  const canvas = document.querySelector('#screen canvas');
  if (!canvas || !canvas.width) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let lit = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 60) lit++;
  return lit;
}"""


def test_user_connects_and_sees_the_real_vm_screen(browser: Any, vms: LiveBroker) -> None:
    page = new_page(browser, vms)
    sign_in(page, "alice")
    vm = card(page, "vm")
    with page.expect_popup() as popup:
        vm.get_by_role("button", name="Connect").click()
    console = popup.value
    console.wait_for_selector('body[data-state="connected"]')
    console.wait_for_function(f"({LIT_PIXELS})() > 200", timeout=TIMEOUT_MS)
    shot(console, "console")
    assert console.evaluate(LIT_PIXELS) > 200  # the demo guest's text console, not a blank canvas
    page.bring_to_front()
    vm.locator('[data-field="state"]', has_text="Connected").wait_for()
    shot(page, "portal-connected")

    vm.get_by_role("button", name="Disconnect").click()
    detail = vm.locator('[data-field="detail"]')
    detail.filter(has_text="Kept for").wait_for()
    first = detail.inner_text()
    page.wait_for_timeout(2200)
    assert detail.inner_text() != first, "the countdown does not move"
    console.wait_for_selector('body[data-state="disconnected"]')  # the proxy closed the console
    shot(page, "portal-disconnected")
    console.close()

    with page.expect_popup() as again:
        vm.get_by_role("button", name="Connect").click()  # reconnect: the same desktop
    tab = again.value
    tab.wait_for_selector('body[data-state="connected"]')
    vm.locator('[data-field="state"]', has_text="Connected").wait_for()
    tab.close()  # closing the console tab ends the session
    vm.locator('[data-field="state"]', has_text="Disconnected").wait_for()
    page.context.close()


def test_second_user_sees_only_their_own_card(browser: Any, vms: LiveBroker) -> None:
    page = new_page(browser, vms)
    sign_in(page, "bob")
    vm = card(page, "vm")
    vm.locator('[data-field="state"]', has_text="Unassigned").wait_for()
    assert page.locator("li.card").count() == 1
    assert "Vm desktop" not in page.locator("#cards").inner_text()  # nothing of alice's
    page.context.close()


def test_waiting_user_sees_the_queue_position_move(browser: Any, broker: LiveBroker) -> None:
    carol, erin = broker.login("carol"), broker.login("erin")
    _wait_for(lambda: carol.post("/me/pools/kiosk/connect").json()["state"] == "connected")
    assert erin.post("/me/pools/kiosk/connect").json()["position"] == 1
    page = new_page(browser, broker)
    sign_in(page, "dave")
    kiosk = card(page, "kiosk")
    kiosk.get_by_role("button", name="Connect").click()
    kiosk.locator('[data-field="detail"]', has_text="number 2 of 2").wait_for()
    shot(page, "portal-waiting")
    carol.post("/me/pools/kiosk/release")  # a desktop frees: erin is served, dave moves up
    deadline = time.monotonic() + 30
    while "number 1 of 1" not in kiosk.inner_text() and time.monotonic() < deadline:
        erin.get("/me/pools/kiosk")  # erin keeps her place by asking, as her portal would
        page.wait_for_timeout(500)
    assert "number 1 of 1" in kiosk.inner_text()
    page.context.close()
    carol.close()
    erin.close()


def test_admin_pool_form_shows_field_errors_then_creates(browser: Any, broker: LiveBroker) -> None:
    page = new_page(browser, broker, "/admin")
    sign_in(page, "admin")
    page.locator('#pool-table tr[data-pool="kiosk"]').wait_for()
    page.get_by_role("button", name="New pool").click()
    form = page.locator("#pool-form")
    form.get_by_label("Name", exact=True).fill("lab")
    form.get_by_label("Provider").select_option("sim")
    form.get_by_label("Template", exact=True).select_option("kiosk")
    form.get_by_label("Maximum desktops").fill("1")
    form.get_by_label("Warm (pre-created) desktops").fill("3")
    form.get_by_label("VM name pattern (with {SEQUENCE})").fill("lab-{SEQUENCE}")
    page.get_by_role("button", name="Create pool").click()
    warm_error = page.locator('[data-field-error="warm_desktops"]')
    warm_error.filter(has_text="warm").wait_for()
    assert form.get_by_label("Warm (pre-created) desktops").get_attribute("aria-invalid")
    form.get_by_label("Warm (pre-created) desktops").fill("1")
    form.get_by_label("Disconnected retention (ISO 8601, e.g. PT30M)").fill("soon")
    page.get_by_role("button", name="Create pool").click()
    page.locator('[data-field-error="retention"]').filter(has_text="soon").wait_for()
    assert warm_error.inner_text() == ""
    shot(page, "admin-pool-errors")
    form.get_by_label("Disconnected retention (ISO 8601, e.g. PT30M)").fill("PT5M")
    page.get_by_role("button", name="Create pool").click()
    page.locator("#pool-form-ok", has_text="Pool lab created").wait_for()
    page.locator('#pool-table tr[data-pool="lab"]').wait_for()  # live update, no reload
    page.context.close()


def test_admin_force_restarts_a_desktop_and_reads_its_console_log(
    browser: Any, vms: LiveBroker
) -> None:
    page = new_page(browser, vms, "/admin")
    sign_in(page, "admin")
    page.locator("#desktop-pool").select_option("vm")
    row = page.locator("#desktop-table tr[data-desktop]").filter(has_text="alice")
    row.get_by_role("button", name="Force restart").click()
    page.locator("#op-status", has_text="force-restart").filter(has_text=": done").wait_for()
    log = page.locator("#console-log")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the restarted guest writes its log anew as it boots
        row.get_by_role("button", name="Console log").click()
        page.locator("#op-status", has_text="console-log").filter(has_text=": done").wait_for()
        if "HOTDESK-READY" in log.inner_text():
            break
        page.wait_for_timeout(2000)
    assert "HOTDESK-READY" in log.inner_text(), log.inner_text()
    chart = page.locator("#charts figure[data-chart='vm']")
    chart.locator("figcaption", has_text="ready").wait_for()
    assert chart.locator("polyline").count() == 3  # ready, assigned, waiting
    page.locator("#events tbody tr").first.wait_for()
    shot(page, "admin")
    for section in ("pools", "desktops", "entitlements"):
        page.locator(f"#{section}").screenshot(path=str(ARTIFACTS / f"admin-{section}.png"))
    page.context.close()


FOCUSED_LABEL = """() => {
  const el = document.activeElement;
  if (!el) return '';
  const label = el.labels && el.labels[0] ? el.labels[0].textContent : '';
  return (label || el.getAttribute('aria-label') || el.textContent || '').trim();
}"""
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def tab_to(page: Any, *wanted: str, presses: int = 40) -> None:
    """Press Tab until the focused control is labelled one of ``wanted`` (keyboard-only use)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate(FOCUSED_LABEL).startswith(wanted):
            return
    pytest.fail(f"Tab never reached any of {wanted!r}")


def keyboard_sign_in(page: Any, username: str) -> None:
    """Sign in with the keyboard alone."""
    tab_to(page, "User name")
    page.keyboard.type(username)
    tab_to(page, "Password")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")


def test_portal_and_admin_work_by_keyboard_on_a_tablet(browser: Any, broker: LiveBroker) -> None:
    context = browser.new_context(viewport={"width": 820, "height": 1180}, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(broker.url + "/")
    keyboard_sign_in(page, "dave")
    card(page, "kiosk").wait_for()
    # the card's action (which one depends on dave's state after earlier tests) is reachable
    tab_to(page, "Connect", "Leave queue", "Open console", "Disconnect", "Release")
    assert page.evaluate(OVERFLOW) <= 0, "the portal scrolls sideways on a tablet"
    shot(page, "portal-tablet")
    page.goto(broker.url + "/admin")
    keyboard_sign_in(page, "admin")
    page.locator('#pool-table tr[data-pool="kiosk"]').wait_for()
    tab_to(page, "New pool")
    assert page.evaluate(OVERFLOW) <= 0, "the admin console scrolls sideways on a tablet"
    shot(page, "admin-tablet")
    context.close()


def _wait_for(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.3)

"""Settings tree, read from the environment (``HOTDESK_DB__URL`` ...) when the broker starts."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseModel):
    """Where the source of truth lives."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: SQLite in the data directory. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/dbname",
    )


class ApiSettings(BaseModel):
    """The HTTP server."""

    host: str = "127.0.0.1"
    port: int = 8080
    token_ttl_hours: float = 12.0


class ReconcilerSettings(BaseModel):
    """Timers and limits of the reconciler."""

    interval_seconds: float = 5.0
    sweep_interval_seconds: float = 30.0
    health_interval_seconds: float = 30.0
    max_create_attempts: int = 3
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    failing_after: int = 3
    boot_timeout_seconds: float = 600.0
    failed_keep_seconds: float = 600.0
    queue_ttl_seconds: float = 60.0
    claim_grace_seconds: float = 120.0
    provider_call_timeout_seconds: float = 120.0
    lease_seconds: float = Field(
        default=15.0,
        gt=0,
        description="how long a reconciler lease lives after its holder's last heartbeat "
        "(renewed every third of it); a dead broker's pools are taken over after it",
    )
    wakeup_poll_seconds: float = Field(
        default=0.25,
        gt=0,
        description="SQLite: how often other processes' events are polled for wake-ups "
        "(PostgreSQL uses LISTEN/NOTIFY)",
    )
    wakeup_min_gap_seconds: float = Field(
        default=0.05,
        ge=0,
        description="a pool woken again within this time of its last plan waits for the rest "
        "(a storm of claims costs a few plans, not one each)",
    )
    breaker_failures: int = Field(
        default=5, ge=1, description="consecutive failed calls that open a provider's breaker"
    )
    breaker_cooldown_seconds: float = Field(
        default=5.0, gt=0, description="first wait before an open breaker lets a trial call"
    )
    breaker_max_cooldown_seconds: float = Field(
        default=15.0, gt=0, description="longest wait between trial calls (doubling)"
    )
    agent_url: str | None = Field(
        default=None,
        description="URL guests use to reach the broker's agent endpoints; default: "
        "http://10.0.2.2:<api port> (the host as seen from QEMU user networking)",
    )


class Settings(BaseSettings):
    """The whole configuration of one broker process."""

    model_config = SettingsConfigDict(env_prefix="HOTDESK_", env_nested_delimiter="__")

    data_dir: Path = Path("data")
    db: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    reconciler: ReconcilerSettings = ReconcilerSettings()
    demo: bool = Field(default=True, description="create a demo pool on first start")
    log_format: str = Field(default="json", description="json (one object per line) or text")
    demo_platform: str = Field(
        default="auto", description="auto (libvirt when available, else sim), libvirt or sim"
    )

    def database_url(self) -> str:
        """The configured database URL, or SQLite in the data directory."""
        if self.db.url:
            return self.db.url
        return f"sqlite:///{(self.data_dir / 'hotdesk.db').resolve()}"

    def safe_database_url(self) -> str:
        """The database URL with its password hidden (for logs and messages)."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url()).render_as_string(hide_password=True)

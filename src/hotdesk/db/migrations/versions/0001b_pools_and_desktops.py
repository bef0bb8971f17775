"""initial schema, part 2: pools, entitlements, desktops, sessions, queue, operations, images

Revision ID: 0001b
Revises: 0001
Create Date: 2026-11-22 03:05:36
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hotdesk.db.types

revision = "0001b"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables, parents first."""
    _create_leak_suspects()
    _create_pools()
    _create_desktops()
    _create_entitlements()
    _create_published_images()
    _create_queue_entries()
    _create_operations()
    _create_sessions()


def downgrade() -> None:
    """Drop the tables, children first."""
    _drop_sessions()
    _drop_operations()
    _drop_queue_entries()
    _drop_published_images()
    _drop_entitlements()
    _drop_desktops()
    _drop_pools()
    _drop_leak_suspects()


def _create_leak_suspects() -> None:
    op.create_table(
        "leak_suspects",
        sa.Column("provider_id", sa.String(length=32), nullable=False),
        sa.Column("vm_name", sa.String(length=200), nullable=False),
        sa.Column("platform_id", sa.String(length=200), nullable=True),
        sa.Column("first_seen_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_sweep", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("provider_id", "vm_name"),
    )


def _create_pools() -> None:
    op.create_table(
        "pools",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("provider_id", sa.String(length=32), nullable=False),
        sa.Column("template_id", sa.String(length=32), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("max_desktops", sa.Integer(), nullable=False),
        sa.Column("warm_desktops", sa.Integer(), nullable=False),
        sa.Column("retention_seconds", sa.Double(), nullable=False),
        sa.Column("next_sequence", sa.Integer(), nullable=False),
        sa.Column("draining", sa.Boolean(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("provision_failures", sa.Integer(), nullable=False),
        sa.Column("provision_error", sa.Text(), nullable=True),
        sa.Column(
            "provision_backoff_until", hotdesk.db.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("created_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pools", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pools_provider_id"), ["provider_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pools_template_id"), ["template_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pools_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "uq_pools_live_name",
            ["tenant_id", "name"],
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )


def _create_desktops() -> None:
    op.create_table(
        "desktops",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("pool_id", sa.String(length=32), nullable=False),
        sa.Column("provider_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("power_state", sa.String(length=16), nullable=True),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("previous_user_id", sa.String(length=32), nullable=True),
        sa.Column("template_revision_id", sa.String(length=32), nullable=False),
        sa.Column("platform_id", sa.String(length=200), nullable=True),
        sa.Column("host", sa.String(length=200), nullable=True),
        sa.Column("datastore", sa.String(length=200), nullable=True),
        sa.Column("console", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("agent_secret_hash", sa.String(length=64), nullable=True),
        sa.Column("agent_ready", sa.Boolean(), nullable=False),
        sa.Column("agent_seen_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("guest_user", sa.String(length=100), nullable=True),
        sa.Column("created_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state_since", hotdesk.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("assigned_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("idle_since", hotdesk.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pool_id"],
            ["pools.id"],
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["template_revision_id"],
            ["template_revisions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    _index_desktops()


def _index_desktops() -> None:
    with op.batch_alter_table("desktops", schema=None) as batch_op:
        batch_op.create_index("ix_desktops_pool_state", ["pool_id", "state"], unique=False)
        batch_op.create_index(batch_op.f("ix_desktops_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "uq_desktops_pool_user",
            ["pool_id", "user_id"],
            unique=True,
            sqlite_where=sa.text("user_id IS NOT NULL"),
            postgresql_where=sa.text("user_id IS NOT NULL"),
        )
        batch_op.create_index(
            "uq_desktops_provider_vm_name",
            ["provider_id", "name"],
            unique=True,
            sqlite_where=sa.text("state <> 'deleted'"),
            postgresql_where=sa.text("state <> 'deleted'"),
        )


def _create_entitlements() -> None:
    op.create_table(
        "entitlements",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("pool_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("include_suborganizations", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["pool_id"], ["pools.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pool_id", "kind", "subject_id"),
    )
    with op.batch_alter_table("entitlements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entitlements_pool_id"), ["pool_id"], unique=False)


def _create_published_images() -> None:
    op.create_table(
        "published_images",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("provider_id", sa.String(length=32), nullable=False),
        sa.Column("revision_id", sa.String(length=32), nullable=False),
        sa.Column("datastore", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["revision_id"],
            ["template_revisions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider_id", "revision_id", "datastore"),
    )
    with op.batch_alter_table("published_images", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_published_images_provider_id"), ["provider_id"], unique=False
        )


def _create_queue_entries() -> None:
    op.create_table(
        "queue_entries",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("pool_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("desktop_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["pool_id"],
            ["pools.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        batch_op.create_index("ix_queue_pool_state_seq", ["pool_id", "state", "seq"], unique=False)
        batch_op.create_index(
            "uq_queue_waiting_user",
            ["pool_id", "user_id"],
            unique=True,
            sqlite_where=sa.text("state = 'waiting'"),
            postgresql_where=sa.text("state = 'waiting'"),
        )


def _create_operations() -> None:
    op.create_table(
        "operations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("desktop_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("requested_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["desktop_id"],
            ["desktops.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_operations_desktop_id"), ["desktop_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_operations_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_operations_tenant_id"), ["tenant_id"], unique=False)


def _create_sessions() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("desktop_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("client", sa.String(length=32), nullable=True),
        sa.Column("started_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["desktop_id"],
            ["desktops.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_desktop_id"), ["desktop_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sessions_user_id"), ["user_id"], unique=False)


def _drop_sessions() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_sessions_desktop_id"))
    op.drop_table("sessions")


def _drop_operations() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operations_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_operations_state"))
        batch_op.drop_index(batch_op.f("ix_operations_desktop_id"))
    op.drop_table("operations")


def _drop_queue_entries() -> None:
    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_queue_waiting_user",
            sqlite_where=sa.text("state = 'waiting'"),
            postgresql_where=sa.text("state = 'waiting'"),
        )
        batch_op.drop_index("ix_queue_pool_state_seq")
    op.drop_table("queue_entries")


def _drop_published_images() -> None:
    with op.batch_alter_table("published_images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_published_images_provider_id"))
    op.drop_table("published_images")


def _drop_entitlements() -> None:
    with op.batch_alter_table("entitlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entitlements_pool_id"))
    op.drop_table("entitlements")


def _drop_desktops() -> None:
    with op.batch_alter_table("desktops", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_desktops_provider_vm_name",
            sqlite_where=sa.text("state <> 'deleted'"),
            postgresql_where=sa.text("state <> 'deleted'"),
        )
        batch_op.drop_index(
            "uq_desktops_pool_user",
            sqlite_where=sa.text("user_id IS NOT NULL"),
            postgresql_where=sa.text("user_id IS NOT NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_desktops_tenant_id"))
        batch_op.drop_index("ix_desktops_pool_state")
    op.drop_table("desktops")


def _drop_pools() -> None:
    with op.batch_alter_table("pools", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_pools_live_name",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_pools_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_pools_template_id"))
        batch_op.drop_index(batch_op.f("ix_pools_provider_id"))
    op.drop_table("pools")


def _drop_leak_suspects() -> None:
    op.drop_table("leak_suspects")

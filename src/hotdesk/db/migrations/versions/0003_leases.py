"""leases and broker instances: several broker processes share reconciler work; an index
for the per-provider provisioning counts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hotdesk.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC = hotdesk.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "broker_instances",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("heartbeat_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("broker_instances", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_broker_instances_heartbeat_at"), ["heartbeat_at"], unique=False
        )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=True),
        sa.Column("token", sa.String(length=32), nullable=True),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("acquired_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_leases_holder"), ["holder"], unique=False)
    with op.batch_alter_table("desktops", schema=None) as batch_op:
        batch_op.create_index("ix_desktops_provider_state", ["provider_id", "state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("desktops", schema=None) as batch_op:
        batch_op.drop_index("ix_desktops_provider_state")
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leases_holder"))
    op.drop_table("leases")
    with op.batch_alter_table("broker_instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_broker_instances_heartbeat_at"))
    op.drop_table("broker_instances")

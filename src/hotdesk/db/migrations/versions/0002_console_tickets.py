"""console tickets: single-use, short-lived tickets for the console websocket

Revision ID: 0002
Revises: 0001b
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hotdesk.db.types

revision = "0002"
down_revision = "0001b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_tickets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("desktop_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("as_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", hotdesk.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["desktop_id"], ["desktops.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("console_tickets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_console_tickets_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_console_tickets_desktop_id"), ["desktop_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("console_tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_tickets_desktop_id"))
        batch_op.drop_index(batch_op.f("ix_console_tickets_tenant_id"))
    op.drop_table("console_tickets")

"""Persistence: SQLAlchemy 2 rows, engine set-up, Alembic migrations."""

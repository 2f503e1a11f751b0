"""Where the Alembic revisions live: ``migrations/`` at the project root."""

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

"""Persistence: SQLAlchemy 2 models, Alembic migrations and the repository used by the domain layer."""

"""Storage: SQLAlchemy Core tables, named queries, one migration history for SQLite and Postgres."""

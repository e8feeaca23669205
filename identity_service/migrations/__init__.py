"""Alembic migrations of the service's schema; run with `identity-service migrate`."""

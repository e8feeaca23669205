"""Alembic's entry point: run the migrations on the service's async engine.

`identity_service.migrate` passes the engine in `config.attributes["engine"]`,
so the migrations use exactly the connection settings the server uses.
"""

from alembic import context
from sqlalchemy.engine import Connection

from identity_service.models import Base


def run_on(connection: Connection) -> None:
    """Run the pending migrations over one synchronous connection."""
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `identity-service migrate`")
run_on(connection)

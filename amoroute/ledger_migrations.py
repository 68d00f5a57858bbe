"""Schema steps that referral_svc and traffic_svc take alike on their credits tables.

Each service owns its migrations, which call these steps with their own table and
constraint names. A step is history once released: never change one, add a new one.
"""

import sqlalchemy as sa
from alembic import op

_LIVE = sa.text("reattributed_at IS NULL")


def add_reattribution(table: str, unique: str) -> None:
    """A credit kept as re-attributed: the nullable `reattributed_at` column, and `unique`
    on (account_id, lead_id) turned from a constraint into a partial unique index over the
    live (not re-attributed) credits, so a lead has one live credit and any number of
    re-attributed ones."""
    # Batch mode: SQLite rebuilds the table (keeping its rows) to drop a constraint.
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("reattributed_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint(unique, type_="unique")
    op.create_index(
        unique,
        table,
        ["account_id", "lead_id"],
        unique=True,
        postgresql_where=_LIVE,
        sqlite_where=_LIVE,
    )


def drop_reattribution(table: str, unique: str) -> None:
    """add_reattribution() undone. Only the live credits stay: the unique constraint
    allows one row per lead."""
    op.execute(f"DELETE FROM {table} WHERE reattributed_at IS NOT NULL")
    op.drop_index(unique, table_name=table)
    with op.batch_alter_table(table) as batch:
        batch.drop_column("reattributed_at")
        batch.create_unique_constraint(unique, ["account_id", "lead_id"])

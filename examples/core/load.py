"""Create the demo's core tables (examples/core/core.sql) in a database: ``python examples/core/load.py URL``.

The host application owns these tables; this stands in for its own migrations.
"""

from __future__ import annotations

import sys
from pathlib import Path

import sqlalchemy as sa


def load(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    statements = [s.strip() for s in (Path(__file__).parent / "core.sql").read_text().split(";") if s.strip()]
    with engine.begin() as conn:
        existing = set(sa.inspect(conn).get_table_names())
        for statement in statements:
            body = "\n".join(line for line in statement.splitlines() if not line.startswith("--"))
            name = body.split()[2] if body.upper().startswith("CREATE TABLE") else None
            if name not in existing:
                conn.exec_driver_sql(body)
    engine.dispose()


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "sqlite:///extschema.db"
    if len(sys.argv) == 1:  # say where it writes: the CLI's default database, in the working directory
        print(f"no database URL given: loading the core tables into {url} (usage: load.py URL)", file=sys.stderr)
    load(url)

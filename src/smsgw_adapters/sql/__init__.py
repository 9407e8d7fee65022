"""The SQL adapter: SQLAlchemy 2 async Core over SQLite (aiosqlite) or MySQL/MariaDB (asyncmy).

    engine = create_engine("sqlite+aiosqlite:///var/smsgw.db")
    await upgrade_to_head(engine)
    uow = sql_uow_factory(engine)  # a smsgw_core.ports.UnitOfWorkFactory
    ...
    await engine.dispose()
"""

from smsgw_adapters.sql.engine import create_engine
from smsgw_adapters.sql.migrate import at_head, upgrade_to_head
from smsgw_adapters.sql.uow import SqlUnitOfWork, sql_uow_factory

__all__ = ["SqlUnitOfWork", "at_head", "create_engine", "sql_uow_factory", "upgrade_to_head"]

"""The database layer: connections, the deploy lock, timeouts and retry, read-only and
autocommit work, server messages.

Hands on the names the layers above use; each lives in the module named for its concept.
"""

from shipshape.db.connections import (
    connect,
    end_read,
    identifier,
    operator,
    own_transaction,
    server_version,
    table_exists,
)
from shipshape.db.locks import (
    MIGRATION_LOCK,
    advisory_lock,
    describe_holders,
    lock_holders,
    table_lock_holders,
)
from shipshape.db.messages import server_message
from shipshape.db.queries import query, statement
from shipshape.db.timeouts import (
    local_timeouts_sql,
    retry_on_lock_timeout,
    set_local_timeouts,
    set_session_timeouts,
)
from shipshape.db.transactions import autocommit, read_only

__all__ = [
    "MIGRATION_LOCK", "advisory_lock", "autocommit", "connect", "describe_holders",
    "end_read", "identifier", "local_timeouts_sql", "lock_holders", "operator", "own_transaction",
    "query", "read_only",
    "retry_on_lock_timeout", "server_message", "server_version", "set_local_timeouts", "set_session_timeouts",
    "statement", "table_exists", "table_lock_holders",
]

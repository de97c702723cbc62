"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file, polled every 50 ms.

Chosen so ``make run`` needs no server. kombu passes transport options straight to
``create_engine``, so the polling interval (1 s by default, ~1 s per round trip) is set here on a
subclass instead. Messages a dead worker took are not redelivered by this transport; the reaper in
``worker.reaper`` re-enqueues their runs from the database lease, the same path as on Redis.
"""

from __future__ import annotations

from kombu.transport import sqlalchemy

POLLING_INTERVAL = 0.05


class Transport(sqlalchemy.Transport):
    polling_interval = POLLING_INTERVAL

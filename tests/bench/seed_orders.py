"""Benchmark: one user's order history in a table of a million orders.

Seeds ``--orders`` orders spread over ``--users`` users into the orders service's own
tables (a SQLite file by default, or ``--url``), then times the history query (a
user's newest 20 orders, served by the (user_id, created_at) index) for random users,
as bare SQL and through ``logic.list_orders``, and prints the query plan. Prints
figures; asserts nothing. Run: ``.venv/bin/python -m tests.bench.seed_orders [PATH]``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import sessionmaker

from contracts.orders import TRANSITIONS
from mesh.sql import make_sessionmaker
from services.orders import logic
from services.orders.models import Base, Order
from tests.bench.bench_register import percentile

HISTORY = 20
STATUSES = sorted(TRANSITIONS)
START = datetime(2025, 1, 1, tzinfo=UTC)


def order_rows(
    rng: random.Random, first: int, count: int, total: int, users: int
) -> list[dict[str, Any]]:
    """``count`` orders from number ``first`` on, in creation order over one year."""
    step = timedelta(days=365) / total
    rows = []
    for n in range(first, first + count):
        quantity, price = rng.randint(1, 5), rng.randint(100, 50_000)
        created = START + step * n
        rows.append(
            {
                "user_id": rng.randint(1, users),
                "product_id": rng.randint(1, 2_000),
                "quantity": quantity,
                "unit_price_cents": price,
                "total_cents": price * quantity,
                "currency": "EUR",
                "status": rng.choice(STATUSES),
                "order_ref": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
                "created_at": created,
                "updated_at": created,
            }
        )
    return rows


def seed(engine: Engine, rng: random.Random, total: int, users: int, batch: int) -> float:
    """Insert ``total`` orders in batches of ``batch`` (one executemany each); seconds taken."""
    started = time.perf_counter()
    for first in range(0, total, batch):
        rows = order_rows(rng, first, min(batch, total - first), total, users)
        with engine.begin() as connection:
            connection.execute(insert(Order), rows)
        print(f"  seeded {first + len(rows):>9,} orders", end="\r", flush=True)
    print()
    return time.perf_counter() - started


def history_query(user_id: int) -> Any:
    """The statement ``logic.list_orders`` runs for one page of history."""
    return (
        select(Order)
        .where(Order.user_id == user_id)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(HISTORY)
    )


def explain(engine: Engine, statement: Any) -> list[str]:
    """The engine's plan for ``statement``, one line a row."""
    sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as connection:
        rows = connection.execute(text(prefix + sql)).all()
    return [" | ".join(str(value) for value in row) for row in rows]


def timed(call: Callable[[int], Any], user_ids: list[int]) -> list[float]:
    """Milliseconds ``call(user_id)`` took, for each user id."""
    elapsed = []
    for user_id in user_ids:
        started = time.perf_counter()
        call(user_id)
        elapsed.append((time.perf_counter() - started) * 1000)
    return elapsed


def report(name: str, ms: list[float]) -> None:
    print(
        f"{name:44s} n={len(ms):4d}  p50={percentile(ms, 50):7.3f} ms  "
        f"p99={percentile(ms, 99):7.3f} ms"
    )


def bench(sessions: sessionmaker, rng: random.Random, users: int, samples: int) -> None:
    picks = [rng.randint(1, users) for _ in range(samples)]
    with sessions() as session:
        session.scalars(history_query(picks[0])).all()  # warm the page cache
        sql = timed(lambda user_id: session.scalars(history_query(user_id)).all(), picks)
    logic_ms = timed(lambda user_id: logic.list_orders(sessions, user_id, {}), picks)
    report(f"history, newest {HISTORY} (SQL only)", sql)
    report(f"history via logic.list_orders (limit {HISTORY})", logic_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", nargs="?", type=Path, help="SQLite file (default: a temp file)")
    parser.add_argument("--url", help="any SQLAlchemy URL instead of a SQLite file")
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reset", action="store_true", help="drop the orders tables first")
    args = parser.parse_args()

    scratch = None if args.path or args.url else Path(tempfile.mkdtemp(prefix="seed-orders-"))
    path = args.path or Path(scratch or ".") / "orders.db"
    url = args.url or f"sqlite:///{path}"
    sessions = make_sessionmaker(url, Base.metadata)
    engine: Engine = sessions.kw["bind"]
    if args.reset:
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
    with engine.connect() as connection:
        existing = connection.scalar(select(func.count()).select_from(Order)) or 0
    if existing:
        parser.error(f"{url} already holds {existing:,} orders; pass --reset to start afresh")

    rng = random.Random(args.seed)
    print(f"database: {engine.url.render_as_string(hide_password=True)}")
    seconds = seed(engine, rng, args.orders, args.users, args.batch)
    print(
        f"seeded {args.orders:,} orders for {args.users:,} users in {seconds:.1f} s "
        f"({args.orders / seconds:,.0f} rows/s)"
    )
    if engine.dialect.name == "sqlite":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    print("plan of the history query:")
    for line in explain(engine, history_query(1)):
        print(f"  {line}")
    bench(sessions, rng, args.users, args.samples)
    engine.dispose()
    if scratch is not None:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()

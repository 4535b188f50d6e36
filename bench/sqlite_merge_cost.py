#!/usr/bin/env python3
"""bench/sqlite_merge_cost.py: what SQLite alone charges for moving rows from an insertion-ordered table into
a table clustered by (room, seq) with a unique (user_id, cmid) index — the store's inbox merge
(docs/storage.md), without parleyd: one INSERT ... SELECT per chunk, one transaction each, so no per-row
statement overhead. Prints the CPU time per row.

  bench/sqlite_merge_cost.py [--rows 200000] [--rooms 100] [--chunk 4096] [--no-index] [--ordered]

--no-index drops the dedupe index (what it costs), --ordered inserts each chunk in (room, seq) order. The
schema is parleyd's (src/store/sqlite.c); WAL, synchronous NORMAL, 8 MiB cache, checkpoints every 1000 pages.
A benchmark, not a test."""
import argparse
import os
import sqlite3
import tempfile
import time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--rows", type=int, default=200000)
ap.add_argument("--rooms", type=int, default=100)
ap.add_argument("--chunk", type=int, default=4096)
ap.add_argument("--no-index", action="store_true")
ap.add_argument("--ordered", action="store_true")
args = ap.parse_args()

with tempfile.TemporaryDirectory() as d:
    db = sqlite3.connect(os.path.join(d, "m.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA cache_size = -8192")
    db.execute("PRAGMA wal_autocheckpoint = 1000")
    db.executescript("""
      CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, mid TEXT NOT NULL, ts INTEGER NOT NULL,
        user_id TEXT NOT NULL, user_name TEXT, cmid TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (room, seq)) WITHOUT ROWID;
      CREATE TABLE rooms (room TEXT PRIMARY KEY, head INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE inbox (id INTEGER PRIMARY KEY, room TEXT NOT NULL, seq INTEGER NOT NULL, mid TEXT NOT NULL,
        ts INTEGER NOT NULL, user_id TEXT NOT NULL, user_name TEXT, cmid TEXT NOT NULL, body TEXT NOT NULL);""")
    if not args.no_index:
        db.execute("CREATE UNIQUE INDEX messages_user_cmid ON messages (user_id, cmid)")
    body = '{"t":"' + "x" * 64 + '"}'
    db.execute("BEGIN")
    db.executemany("INSERT INTO inbox VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   ((i + 1, f"room-{i % args.rooms}", i // args.rooms + 1, f"m{i:012d}", 1700000000000 + i,
                     f"user-{i % args.rooms}", "Bench", f"c{i}", body) for i in range(args.rows)))
    db.execute("COMMIT")
    order = "ORDER BY room, seq" if args.ordered else ""
    t0 = time.process_time()
    for a in range(0, args.rows, args.chunk):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT OR IGNORE INTO messages SELECT room, seq, mid, ts, user_id, user_name, cmid, body "
                   f"FROM inbox WHERE id > ? AND id <= ? {order}", (a, a + args.chunk))
        db.execute("INSERT INTO rooms (room, head) SELECT room, max(seq) FROM inbox WHERE id > ? AND id <= ? "
                   "GROUP BY room ON CONFLICT (room) DO UPDATE SET head = max(head, excluded.head)",
                   (a, a + args.chunk))
        db.execute("COMMIT")
    cpu = time.process_time() - t0
    db.close()
print(f"SQLite {sqlite3.sqlite_version}: {args.rows} rows over {args.rooms} rooms in chunks of {args.chunk}"
      f"{', no dedupe index' if args.no_index else ''}{', in (room, seq) order' if args.ordered else ''}: "
      f"{cpu / args.rows * 1e6:.2f} us CPU per row")

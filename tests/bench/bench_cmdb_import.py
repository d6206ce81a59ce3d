"""Benchmark: importing hosts from CSV into the CMDB (SQLite and MariaDB).

    .venv/bin/python tests/bench/bench_cmdb_import.py [--hosts 100000] [--db sqlite,mysql,mysqlclient]

For each backend it times, on an empty CMDB:
  parse      CSV text -> records (saltops.cmdb.import_export.parse)
  import     the whole all-or-nothing import (parse, validate, plan, write hosts, roles,
             lines, apps, audit rows, event), one transaction
  reimport   the same file again (everything unchanged: validate + compare only)
and, as the baseline, the raw floor: the same host rows (no roles/lines/apps/audit)
written with one executemany in one transaction, no validation.  The ratio says how
much the import costs over writing the bare rows.

MariaDB: a fresh database on 127.0.0.1:3306 (SALTOPS_TEST_MYSQL to change), dropped after;
``mysql`` drives it through PyMySQL, ``mysqlclient`` through mysqlclient (the ``mysql``
extra; skipped with a note where it is not installed), and the ratio between the two is printed.
"""

import argparse
import datetime
import os
import sys
import tempfile
import time

import sqlalchemy as sa

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from saltops import config
from saltops.cmdb import import_export
from saltops.cmdb.model import Rules
from saltops.cmdb.schema import hosts as hosts_table
from saltops.store.engine import Store, mysql_driver
from tests.support import mysql as mysql_support

CONF = config.load({"cachedir": tempfile.gettempdir()})
RULES = Rules.from_config(CONF)


def make_csv(count):
    rows = ["hostname,ip,roles,platform,machine_type,idc,env,status,owner,lines,apps"]
    idcs = CONF["cmdb"]["idcs"]
    for i in range(count):
        a, b, c = (i >> 16) & 255, (i >> 8) & 255, i & 255
        role = ("web", "web", "web", "db", "cache", "lb")[i % 6]
        rows.append(
            f"{role}{i:06d}.{idcs[i % len(idcs)]}.example.com,10.{a}.{b}.{c},base;{role},Debian-12,vm,"
            f"{idcs[i % len(idcs)]},prod,online,运维-{i % 50},telecom=100.{a}.{b}.{c};unicom=101.{a}.{b}.{c},"
            + ('"{""shop"": {""port"": 8000, ""weight"": 10}}"' if role == "web" else "")
        )
    return "\n".join(rows) + "\n"


def timed(func):
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def raw_floor(store, text):
    records, _ = import_export.parse(text, "csv")
    now = datetime.datetime(2024, 1, 1)
    rows = [
        {
            "hostname": r["hostname"],
            "ip": r["ip"],
            "platform": r["platform"],
            "machine_type": r["machine_type"],
            "idc": r["idc"],
            "env": r["env"],
            "status": r["status"],
            "owner": r["owner"],
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        for r in records
    ]

    def write():
        with store.begin() as conn:
            for start in range(0, len(rows), 5000):
                conn.execute(hosts_table.insert(), rows[start : start + 5000])

    elapsed, _ = timed(write)
    with store.begin() as conn:
        conn.execute(hosts_table.delete())
    return elapsed


def bench(kind, url, text, count):
    """Time the import into ``url``; returns the import's seconds."""
    store = Store(url)
    store.migrate()
    try:
        floor = raw_floor(store, text)
        parse_s, _ = timed(lambda: import_export.parse(text, "csv"))
        import_s, summary = timed(lambda: import_export.import_hosts(store, "bench", text, "csv", RULES))
        assert len(summary["added"]) == count, summary.keys()
        again_s, summary = timed(lambda: import_export.import_hosts(store, "bench", text, "csv", RULES))
        assert len(summary["unchanged"]) == count
        with store.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(hosts_table)).scalar()
        assert stored == count
    finally:
        store.dispose()
    print(
        f"{kind:7s} hosts={count:<7d} parse={parse_s:6.2f}s  import={import_s:6.2f}s "
        f"({count / import_s:8.0f} hosts/s)  reimport(unchanged)={again_s:6.2f}s ({count / again_s:8.0f} hosts/s)  "
        f"raw-rows-floor={floor:5.2f}s  import/floor={import_s / floor:5.1f}x"
    )
    return import_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100000)
    parser.add_argument("--db", default="sqlite,mysql,mysqlclient")
    args = parser.parse_args()
    text = make_csv(args.hosts)
    print(f"CSV: {args.hosts} hosts, {len(text.encode()) / 1e6:.1f} MB")
    took = {}
    for kind in args.db.split(","):
        if kind == "sqlite":
            with tempfile.TemporaryDirectory(prefix="socb-") as tmp:
                took[kind] = bench("sqlite", f"sqlite:///{tmp}/bench.db", text, args.hosts)
        elif kind in ("mysql", "mysqlclient"):
            problem = mysql_support.server_problem()
            if problem:
                print(f"{kind} skipped: {problem}")
                continue
            if kind == "mysqlclient" and mysql_driver("mysql://") != "mysqldb":
                print("mysqlclient skipped: not installed (pip install 'saltops[mysql]')")
                continue
            database = mysql_support.create_database("saltops_bench")
            driver = "pymysql" if kind == "mysql" else "mysqldb"
            try:
                took[kind] = bench(kind, database.url.replace("mysql+pymysql", f"mysql+{driver}"), text, args.hosts)
            finally:
                database.drop()
        else:
            parser.error(f"unknown --db {kind!r}")
    if "mysql" in took and "mysqlclient" in took:
        print(f"MariaDB import: PyMySQL / mysqlclient = {took['mysql'] / took['mysqlclient']:.2f}x")


if __name__ == "__main__":
    main()

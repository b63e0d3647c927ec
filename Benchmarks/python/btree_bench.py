#!/usr/bin/env python3
"""The Python Durus 4.3 side of `durus-bench collections`.

    btree_bench.py --dir SCRATCH [--entries 1000000] [--batch 10000] [--lookups 100000] [--ranges 2000]

A durus.btree.BTree of int -> int on FileStorage (which never fsyncs; the
Swift side runs Berkeley DB in write-no-sync mode to match): inserts in random
key order committed every `batch`, then random point lookups and 100-entry
range scans through a fresh connection. Prints one JSON line on stdout.
"""
import argparse
import json
import logging
import os
import random
import sys
import time

from durus.btree import BTree
from durus.connection import Connection
from durus.file_storage import FileStorage


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--entries", type=int, default=1000000)
    parser.add_argument("--batch", type=int, default=10000)
    parser.add_argument("--lookups", type=int, default=100000)
    parser.add_argument("--ranges", type=int, default=2000)
    args = parser.parse_args()
    logging.getLogger("durus").setLevel(logging.WARNING)  # Durus logs every commit otherwise
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, "btree.durus")
    if os.path.exists(path):
        os.remove(path)
    rng = random.Random(43)
    keys = list(range(args.entries))
    rng.shuffle(keys)

    storage = FileStorage(path)
    connection = Connection(storage, cache_size=2 * args.entries)
    root = connection.get_root()
    root["tree"] = BTree()
    connection.commit()
    tree = root["tree"]
    start = time.perf_counter()
    for number, key in enumerate(keys):
        tree[key] = key * 2
        if (number + 1) % args.batch == 0:
            connection.commit()
    connection.commit()
    insert_seconds = time.perf_counter() - start
    storage.close()

    storage = FileStorage(path)
    connection = Connection(storage, cache_size=2 * args.entries)
    tree = connection.get_root()["tree"]
    start = time.perf_counter()
    total = 0
    for _ in range(args.lookups):
        key = rng.randrange(args.entries)
        total += tree[key]
    lookup_seconds = time.perf_counter() - start

    start = time.perf_counter()
    scanned = 0
    for _ in range(args.ranges):
        low = rng.randrange(max(1, args.entries - 100))
        for key, value in tree.items_range(low, low + 100):
            scanned += 1
    range_seconds = time.perf_counter() - start
    storage.close()
    if scanned < args.ranges * min(100, args.entries) * 0.99:
        raise SystemExit("btree_bench: ranges returned %d entries" % scanned)
    print(json.dumps({
        "insert_per_s": args.entries / insert_seconds,
        "lookup_per_s": args.lookups / lookup_seconds,
        "range_per_s": args.ranges / range_seconds,
    }))
    print("python: inserts %.1f s, lookups %.1f s, ranges %.1f s" % (insert_seconds, lookup_seconds, range_seconds),
          file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Python Durus 4.3's side of `durus-bench pickles`:

    pickles_bench.py --file PATH [--objects 100000] [--batch 1000] [--cold 5000]

create  `objects` pickle_item.Item objects in buckets of 1000 (PersistentDicts in
        the root's PersistentList "buckets"), committed every `batch`, into a new
        FileStorage at PATH (which Durus never fsyncs).
cold    A fresh FileStorage handle and Connection on that file, then `cold`
        objects loaded by OID (Connection.get, then .value, which loads the state),
        chosen at random among the items.

The file stays behind: the Swift side then loads the same objects from it.
One line of JSON goes to stdout.
"""
import argparse
import json
import os
import random
import sys
import time

from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList

from pickle_item import Item


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", required=True)
    parser.add_argument("--objects", type=int, default=100000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--cold", type=int, default=5000)
    args = parser.parse_args()
    if os.path.exists(args.file):
        os.remove(args.file)

    connection = Connection(FileStorage(args.file))
    root = connection.get_root()
    root["buckets"] = buckets = PersistentList()
    connection.commit()
    start = time.perf_counter()
    for number in range(args.objects):
        if number % 1000 == 0:
            buckets.append(PersistentDict())
        buckets[-1][number] = Item(number)
        if (number + 1) % args.batch == 0:
            connection.commit()
    connection.commit()
    create = args.objects / (time.perf_counter() - start)
    oids = [item._p_oid for bucket in buckets for item in bucket.values()]
    connection.get_storage().close()

    reader = Connection(FileStorage(args.file, readonly=True), cache_size=10 * args.cold)
    rng = random.Random(7)
    picked = [rng.choice(oids) for _ in range(args.cold)]
    total = 0
    start = time.perf_counter()
    for oid in picked:
        total += reader.get(oid).value
    cold = args.cold / (time.perf_counter() - start)
    print("cold: checksum %d" % total, file=sys.stderr)
    reader.get_storage().close()
    print(json.dumps({"create_per_s": create, "cold_loads_per_s": cold}))


if __name__ == "__main__":
    main()

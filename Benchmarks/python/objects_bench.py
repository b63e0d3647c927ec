#!/usr/bin/env python3
"""Object-level workload on Python Durus 4.3, the reference for `durus-bench objects`.

The Swift suite starts this script with the Durus virtualenv's interpreter and
runs the same workload on swift-durus, then compares the rates:

    objects_bench.py --dir SCRATCH_DIR [--objects 100000] [--batch 1000]
                     [--rmw 5000] [--cold 5000] [--warm 200000]

Phases, all against SCRATCH_DIR/objects.durus (removed first if present):

  create   `objects` Item instances stored in buckets of 1000 (PersistentDicts in the root's PersistentList),
           keyed 0 ..< objects, committed every `batch` objects.
  rmw      `rmw` commits, each reading a random item and incrementing its value.
  cold     A fresh FileStorage handle and Connection on the same file (the
           first one closed), then `cold` random look-ups through the buckets,
           each touching item.value so the item's state is really loaded.
           "Cold" means a cold object cache: the file was just written, so the
           operating system's page cache is warm, as it is on the Swift side.
  warm     Every item loaded into that connection's cache, then `warm` random
           reads of item.value through the buckets, none of which reach storage.
  memory   Another fresh Connection; tracemalloc measures the Python heap
           growth from loading every item through the buckets, per item.

Durability: Durus 4.3's FileStorage writes each commit with write() + flush()
and never calls fsync() (only pack() does), so commits here reach the OS but
not the disk.  The Swift side runs in its write-without-sync mode to match.

Exactly one line of JSON goes to stdout at the end; progress and diagnostics
go to stderr.
"""
import argparse
import gc
import json
import logging
import os
import random
import sys
import time
import tracemalloc

from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent import Persistent

# Fixed seed, so every run picks the same keys.
SEED = 20240611


class Item(Persistent):
    """The small persistent object the workload creates and reads.

    Pickles record this class as __main__.Item; that resolves because every
    phase loads the objects in this same process.
    """

    def __init__(self, number):
        self.name = "item-%d" % number
        self.value = number
        self.tags = ["t%d" % (number % 7), "k%d" % (number % 13)]


def log(message):
    print(message, file=sys.stderr, flush=True)


def positive_int(text):
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1, got %s" % text)
    return number


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="scratch directory for objects.durus")
    parser.add_argument("--objects", type=positive_int, default=100000)
    parser.add_argument("--batch", type=positive_int, default=1000)
    parser.add_argument("--rmw", type=positive_int, default=5000)
    parser.add_argument("--cold", type=positive_int, default=5000)
    parser.add_argument("--warm", type=positive_int, default=200000)
    return parser.parse_args()


def open_connection(path, cache_size):
    """A new FileStorage handle on `path` and a Connection over it."""
    return Connection(FileStorage(path), cache_size=cache_size)


def close_connection(connection):
    """Durus Connection has no close(); closing its storage releases the file lock."""
    connection.abort()
    connection.get_storage().close()


# Items live in buckets of BUCKET_SIZE consecutive numbers: root["buckets"]
# is a PersistentList of PersistentDicts, item n in bucket n // BUCKET_SIZE.
# The Swift side of `durus-bench objects` builds exactly this shape (its
# BTree arrives later), so both sides load and store the same records.
BUCKET_SIZE = 1000


class Buckets(object):
    """Look-ups by item number through the root's buckets."""

    def __init__(self, root):
        self.buckets = root["buckets"]

    def __getitem__(self, number):
        return self.buckets[number // BUCKET_SIZE][number]

    def itervalues(self):
        for bucket in self.buckets:
            for item in bucket.values():
                yield item


def run_create(path, objects, batch, cache_size):
    """Store `objects` Items in the root's buckets, committing every `batch`.

    Returns (connection, rate).  Setting up the empty list is not timed.
    """
    connection = open_connection(path, cache_size)
    root = connection.get_root()  # Durus makes a PersistentDict root for a new file
    root["buckets"] = PersistentList()
    connection.commit()
    buckets = root["buckets"]

    start = time.perf_counter()
    for number in range(objects):
        if number % BUCKET_SIZE == 0:
            buckets.append(PersistentDict())
        buckets[-1][number] = Item(number)
        if (number + 1) % batch == 0:
            connection.commit()
    connection.commit()  # the final partial batch, if any
    seconds = time.perf_counter() - start
    log("create: %d objects in %.3f s (commits of %d)" % (objects, seconds, batch))
    return connection, objects / seconds


def run_rmw(connection, objects, rmw, rng):
    """`rmw` commits, each incrementing the value of one random item."""
    tree = Buckets(connection.get_root())
    start = time.perf_counter()
    for _ in range(rmw):
        item = tree[rng.randrange(objects)]
        item.value += 1
        connection.commit()
    seconds = time.perf_counter() - start
    log("rmw: %d commits in %.3f s" % (rmw, seconds))
    return rmw / seconds


def run_cold(connection, objects, cold, rng):
    """`cold` random look-ups on a connection whose cache holds only the root.

    Returns (rate, records), records being how many object states the reader
    loaded from storage in the phase: the items plus the list and the buckets
    on the way down.
    """
    root = connection.get_root()  # loaded when the Connection was made
    loads_before = connection.get_load_count()
    total = 0
    start = time.perf_counter()
    tree = Buckets(root)  # the list is still a ghost; the first look-up loads it
    for _ in range(cold):
        total += tree[rng.randrange(objects)].value  # touching .value loads the item
    seconds = time.perf_counter() - start
    records = connection.get_load_count() - loads_before
    log("cold: %d loads in %.3f s, %d records loaded (checksum %d)" % (cold, seconds, records, total))
    return cold / seconds, records


def load_every_item(tree):
    """Load the state of every item (and so every bucket); return the sum of values."""
    return sum(item.value for item in tree.itervalues())


def run_warm(connection, objects, warm, rmw, rng):
    """`warm` random reads of item.value with every item already in the cache."""
    tree = Buckets(connection.get_root())
    # Untimed preload.  The values also check that the rmw commits persisted:
    # item n was created with value n, and every rmw commit added 1.
    preload_start = time.perf_counter()
    values_total = load_every_item(tree)
    log("warm: preloaded %d items in %.3f s (untimed)" % (objects, time.perf_counter() - preload_start))
    expected = objects * (objects - 1) // 2 + rmw
    if values_total != expected:
        raise SystemExit("objects_bench: stored values sum to %d, expected %d" % (values_total, expected))

    loads_before = connection.get_load_count()
    total = 0
    start = time.perf_counter()
    for _ in range(warm):
        total += tree[rng.randrange(objects)].value
    seconds = time.perf_counter() - start
    stray = connection.get_load_count() - loads_before
    log("warm: %d reads in %.3f s, %d records loaded (checksum %d)" % (warm, seconds, stray, total))
    if stray:
        log("warm: warning: %d reads reached storage; the cache was not big enough" % stray)
    return warm / seconds


def measure_bytes_per_object(path, objects, cache_size):
    """Python heap growth per Item from loading every item into a fresh cache.

    The connection is opened before tracing starts, so the storage's offset
    index and the root are not counted.  The growth counted includes the
    buckets and the cache's bookkeeping, spread over the items, since
    those are part of what it costs to hold the objects in memory.  The split
    between the ghosts-plus-index stage and the loaded state goes to stderr.
    """
    phase_start = time.perf_counter()
    connection = open_connection(path, cache_size)
    tree = Buckets(connection.get_root())
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        # Stage 1: walk the buckets, loading the list and every bucket; the
        # items come out as ghosts (identity, oid, and a cache entry only).
        for _ in tree.itervalues():
            pass
        gc.collect()
        ghosts = tracemalloc.get_traced_memory()[0]
        # Stage 2: load every item's state.
        load_every_item(tree)
        gc.collect()
        loaded = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    close_connection(connection)
    log("memory: %d items, %.1f B each for index nodes + ghosts + cache entries, "
        "%.1f B each for loaded state, %.1f B each in all (%.1f s, untimed)"
        % (objects, (ghosts - baseline) / objects, (loaded - ghosts) / objects,
           (loaded - baseline) / objects, time.perf_counter() - phase_start))
    return (loaded - baseline) / objects


def main():
    arguments = parse_arguments()
    # durus.logger logs at INFO to stderr by default, and FileStorage.end()
    # then writes a "Transaction at ..." line for every commit; that would be
    # timed along with the commit and flood the caller's stderr.
    logging.getLogger("durus").setLevel(logging.WARNING)
    # Whatever might print to stdout while the workload runs goes to stderr,
    # so the caller sees exactly one line there: the JSON result.
    result_stream, sys.stdout = sys.stdout, sys.stderr

    os.makedirs(arguments.dir, exist_ok=True)
    path = os.path.join(arguments.dir, "objects.durus")
    if os.path.exists(path):
        os.remove(path)

    # Large enough that no phase evicts anything: every item, the buckets,
    # the list and the root.
    cache_size = max(10 ** 6, 2 * arguments.objects)
    rng = random.Random(SEED)
    started = time.perf_counter()

    connection, create_rate = run_create(path, arguments.objects, arguments.batch, cache_size)
    rmw_rate = run_rmw(connection, arguments.objects, arguments.rmw, rng)
    close_connection(connection)
    del connection
    gc.collect()

    connection = open_connection(path, cache_size)
    cold_rate, cold_records = run_cold(connection, arguments.objects, arguments.cold, rng)
    warm_rate = run_warm(connection, arguments.objects, arguments.warm, arguments.rmw, rng)
    close_connection(connection)
    del connection
    gc.collect()

    bytes_per_object = measure_bytes_per_object(path, arguments.objects, cache_size)
    log("total: %.1f s" % (time.perf_counter() - started))

    result = {
        "create_per_s": create_rate,
        "rmw_commits_per_s": rmw_rate,
        "cold_loads_per_s": cold_rate,
        "cold_loads_records": cold_records,
        "warm_reads_per_s": warm_rate,
        "bytes_per_cached_object": bytes_per_object,
    }
    print(json.dumps(result), file=result_stream, flush=True)


if __name__ == "__main__":
    main()

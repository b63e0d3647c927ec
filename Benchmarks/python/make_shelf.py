#!/usr/bin/env python3
"""Durus files for `durus-bench migrate`, made and opened by Python Durus 4.3.

    make_shelf.py make PATH OBJECTS   build a SHELF-1 file (PATH removed first)
    make_shelf.py open PATH           open it with FileStorage, as a Durus
                                      server or program does at startup

make: OBJECTS small PersistentDicts in a BTree under the root, committed
10,000 at a time; then a pack (which writes the offset map, as a long-lived
file has one); then 3 more commits each changing 1% of the items, so the
file also has transactions after the map and records they supersede.

open: the seconds FileStorage(PATH, readonly=True) takes, and the process's
peak resident memory (VmHWM) then and before the open.

Each prints one line of JSON to stdout; progress goes to stderr.
"""
import json
import os
import sys
import time

from durus.btree import BTree
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.logger import logger
from durus.persistent_dict import PersistentDict

logger.setLevel(30)   # no line per commit

BATCH = 10000


def peak_bytes():
    # Not ru_maxrss: after posix_spawn it also counts the parent's peak.
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024


def make(path, objects):
    if os.path.exists(path):
        os.remove(path)
    start = time.time()
    connection = Connection(FileStorage(path))
    root = connection.get_root()
    root['items'] = tree = BTree()
    connection.commit()
    for first in range(0, objects, BATCH):
        for i in range(first, min(objects, first + BATCH)):
            tree[i] = PersistentDict(i=i, name='item %d' % i)
        connection.commit()
        connection.shrink_cache()
        if first % 100000 == 0:
            print('made %d objects' % (first + BATCH), file=sys.stderr)
    built = time.time()
    connection.pack()
    packed = time.time()
    for round in range(3):
        for i in range(round, objects, 100):
            tree[i]['changed'] = round
        connection.commit()
        connection.shrink_cache()
    connection.get_storage().close()
    json.dump(dict(objects=objects, build_seconds=built - start, pack_seconds=packed - built,
                   seconds=time.time() - start, bytes=os.path.getsize(path)), sys.stdout)


def open_file(path):
    before = peak_bytes()
    start = time.time()
    storage = FileStorage(path, readonly=True)
    seconds = time.time() - start
    peak = peak_bytes()
    storage.close()
    json.dump(dict(open_seconds=seconds, peak_bytes=peak, baseline_bytes=before), sys.stdout)


if __name__ == '__main__':
    if sys.argv[1] == 'make':
        make(sys.argv[2], int(sys.argv[3]))
    else:
        open_file(sys.argv[2])

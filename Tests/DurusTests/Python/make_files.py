"""Builds Durus files with the real Durus 4.3 for FileStorageTests.

    make_files.py shelf PATH   a SHELF-1 file (durus.file_storage.FileStorage)
    make_files.py dfs20 PATH   a DFS20 file (durus.file_storage2.FileStorage2)

Prints JSON: every current record (OID -> hex), the OIDs reachable from the
root, and for SHELF-1 what stands after the offset map (Durus writes the map
only when a file is created or packed, so the script packs once and then
commits more).
"""
import json
import sys

from durus.btree import BTree
from durus.connection import Connection
from durus.file import File
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.serialize import unpack_record, split_oids
from durus.shelf import Shelf, read_transaction_offsets
from durus.utils import int8_to_str, str_to_int8, read_int8


def add_items(tree, start, count):
    previous = None
    for i in range(start, start + count):
        item = PersistentDict(i=i, name='item %d' % i, blob='x' * (i % 97))
        if i % 10 == 0:
            item['list'] = PersistentList([i, 'ten', PersistentDict(deep=i)])
        if previous is not None:
            item['previous'] = previous
        tree[i] = item
        previous = item


def make_garbage(connection, count):
    root = connection.get_root()
    root['junk'] = PersistentList([PersistentDict(junk=j) for j in range(count)])
    connection.commit()
    del root['junk']
    connection.commit()


def build_shelf(path):
    connection = Connection(FileStorage(path))
    root = connection.get_root()
    root['tree'] = tree = BTree()
    for start in range(0, 2000, 500):
        add_items(tree, start, 500)
        connection.commit()
    make_garbage(connection, 50)
    connection.pack()
    # After the pack: 4 transactions after the offset map.
    for i in range(0, 2000, 20):
        tree[i]['changed'] = True
    connection.commit()
    add_items(tree, 2000, 200)
    connection.commit()
    make_garbage(connection, 20)
    connection.get_storage().close()


def build_dfs20(path):
    connection = Connection(FileStorage2(path))
    root = connection.get_root()
    root['tree'] = tree = BTree()
    add_items(tree, 0, 300)
    connection.commit()
    make_garbage(connection, 10)
    connection.pack()
    add_items(tree, 300, 50)
    connection.commit()
    root['note'] = PersistentList(['after the index'])
    connection.commit()
    connection.get_storage().close()


def reachable(storage):
    seen, todo = set(), [int8_to_str(0)]
    while todo:
        oid = todo.pop()
        if oid in seen:
            continue
        seen.add(oid)
        todo.extend(split_oids(unpack_record(storage.load(oid))[2]))
    return sorted(str_to_int8(oid) for oid in seen)


def shelf_tail(path):
    """Transactions and records after the offset map, counted by Durus's own reader."""
    file = File(path, readonly=True)
    offset_map = Shelf(file, readonly=True).get_offset_map()
    file.seek(offset_map.get_start())
    file.seek(offset_map.get_start() + 8 + read_int8(file))
    tail_start = file.tell()
    transactions = records = 0
    while True:
        offsets = read_transaction_offsets(file)
        if offsets is None:
            break
        transactions += 1
        records += len(offsets)
    entries = len(list(offset_map.iteritems()))
    file.close()
    return dict(tail_start=tail_start, tail_transactions=transactions,
                tail_records=records, map_entries=entries)


def describe(storage):
    records = {str(str_to_int8(oid)): record.hex() for oid, record in storage.gen_oid_record()}
    return dict(records=records, reachable=reachable(storage))


if __name__ == '__main__':
    kind, path = sys.argv[1:3]
    if kind == 'shelf':
        build_shelf(path)
        storage = FileStorage(path, readonly=True)
        result = describe(storage)
        result.update(shelf_tail(path))
    else:
        build_dfs20(path)
        storage = FileStorage2(path, readonly=True)
        result = describe(storage)
    storage.close()
    json.dump(result, sys.stdout)

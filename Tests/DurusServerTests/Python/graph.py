"""An object graph written by one Python Durus client and verified by another.

    python graph.py ADDRESS write     -> wrote N objects
    python graph.py ADDRESS read      -> verified N objects
    python graph.py FILE file [shelf|dfs20]
                                      -> wrote N objects (into a Durus 4.3 file: SHELF-1 by
                                         FileStorage, or DFS20 by durus.file_storage2), with
                                         20,000 more PersistentDicts in a BTree, garbage and
                                         later transactions
"""
import sys

from durus.btree import BTree
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList

TREE_SIZE = 10000
ITEMS = 20000


def connect(address):
    if ':' in address:
        host, port = address.rsplit(':', 1)
        return Connection(ClientStorage(host=host, port=int(port)))
    return Connection(ClientStorage(address=address))


def person(index):
    return {'name': 'person %d' % index, 'age': 20 + index % 50, 'tags': ['t%d' % (index % 7)]}


def item(index):
    return {'i': index, 'name': 'item %d' % index, 'blob': 'x' * (index % 97)}


def add_items(connection, root):
    """20,000 PersistentDicts in a BTree, each referring to the one before;
    every tenth holds a PersistentList with a nested PersistentDict."""
    items = root['items'] = BTree()
    previous = None
    for index in range(ITEMS):
        entry = PersistentDict(item(index))
        if index % 10 == 0:
            entry['list'] = PersistentList([index, 'ten', PersistentDict(deep=index)])
        if previous is not None:
            entry['previous'] = previous
        items[index] = entry
        previous = entry
        if index % 5000 == 4999:
            connection.commit()
    connection.commit()
    return ITEMS + 2 * (ITEMS // 10)


def read_items(root):
    items = root['items']
    count = 0
    previous = None
    for expected, (index, entry) in enumerate(items.items()):
        assert index == expected, (index, expected)
        for key, value in item(index).items():
            assert entry[key] == value, (index, key)
        if index % 10 == 0:
            listed = entry['list']
            assert listed[:2] == [index, 'ten'] and listed[2]['deep'] == index, index
            count += 2
        assert entry.get('previous') is previous, index
        previous = entry
        count += 1
    assert len(items) == ITEMS
    return count


def write(connection):
    root = connection.get_root()
    people = PersistentList()
    for index in range(200):
        entry = PersistentDict(person(index))
        people.append(entry)
    for index in range(1, 200):
        people[index]['friend'] = people[index - 1]    # nested references
    tree = BTree()
    for key in range(TREE_SIZE):
        tree[key] = people[key % 200] if key % 3 == 0 else 'value %d' % key
    root['people'] = people
    root['tree'] = tree
    root['title'] = u'caf\xe9 \u2603'
    connection.commit()
    return 200 + len(tree)


def read(connection):
    root = connection.get_root()
    people = root['people']
    assert root['title'] == u'caf\xe9 \u2603'
    assert len(people) == 200
    for index, entry in enumerate(people):
        expected = person(index)
        for key in expected:
            assert entry[key] == expected[key], (index, key, entry[key])
        if index:
            assert entry['friend'] is people[index - 1]
    tree = root['tree']
    assert len(tree) == TREE_SIZE
    count = 0
    for key, value in tree.items():
        if key % 3 == 0:
            assert value is people[key % 200], key
        else:
            assert value == 'value %d' % key, key
        count += 1
    assert count == TREE_SIZE
    assert list(tree.keys()) == list(range(TREE_SIZE))
    return 200 + count + (read_items(root) if 'items' in root else 0)


if __name__ == '__main__':
    if sys.argv[2] == 'file':
        if sys.argv[3:] == ['dfs20']:
            from durus.file_storage2 import FileStorage2 as FileStorage
        else:
            from durus.file_storage import FileStorage
        connection = Connection(FileStorage(sys.argv[1]))
        written = write(connection)
        print('wrote %d objects' % (written + add_items(connection, connection.get_root())))
        for index in range(5):                      # garbage, then later transactions
            connection.get_root()['scratch'] = PersistentList([PersistentDict(n=index)])
            connection.commit()
        del connection.get_root()['scratch']
        connection.commit()
        connection.storage.close()
        sys.exit(0)
    connection = connect(sys.argv[1])
    if sys.argv[2] == 'write':
        print('wrote %d objects' % write(connection))
    else:
        print('verified %d objects' % read(connection))
    connection.storage.close()

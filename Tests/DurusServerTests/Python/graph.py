"""An object graph written by one Python Durus client and verified by another.

    python graph.py ADDRESS write     -> wrote N objects
    python graph.py ADDRESS read      -> verified N objects
    python graph.py FILE file         -> wrote N objects (into a Durus 4.3 FileStorage file)
"""
import sys

from durus.btree import BTree
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList

TREE_SIZE = 10000


def connect(address):
    if ':' in address:
        host, port = address.rsplit(':', 1)
        return Connection(ClientStorage(host=host, port=int(port)))
    return Connection(ClientStorage(address=address))


def person(index):
    return {'name': 'person %d' % index, 'age': 20 + index % 50, 'tags': ['t%d' % (index % 7)]}


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
    return 200 + count


if __name__ == '__main__':
    if sys.argv[2] == 'file':
        from durus.file_storage import FileStorage
        connection = Connection(FileStorage(sys.argv[1]))
        print('wrote %d objects' % write(connection))
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

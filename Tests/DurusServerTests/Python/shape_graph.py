"""A graph of shapes.Shape objects that Python and Swift both read and write.

    python shape_graph.py FILE write        -> writes the graph into a Durus file, prints its JSON view
    python shape_graph.py ADDRESS show      -> prints the JSON view of the graph a server holds
    python shape_graph.py ADDRESS change    -> changes the graph through the server, prints the new view

The JSON view: {"shapes": {name: {...attributes...}}, "order": [names of root['list']], "labels": [...]}
with references shown as the referenced shape's name.
"""
import json
import sys

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.persistent_set import PersistentSet
from durus.btree import BTree

from shapes import Shape


def connect(address):
    if ':' in address:
        host, port = address.rsplit(':', 1)
        return Connection(ClientStorage(host=host, port=int(port)))
    return Connection(ClientStorage(address=address))


def view(root):
    def shape_view(shape):
        out = {}
        for key, value in sorted(shape.__dict__.items()):
            if isinstance(value, Shape):
                out[key] = value.name
            elif isinstance(value, bytes):
                out[key] = list(value)
            elif isinstance(value, (tuple, list)):
                out[key] = [v.name if isinstance(v, Shape) else v for v in value]
            elif isinstance(value, dict):
                out[key] = {str(k): v for k, v in value.items()}
            elif isinstance(value, PersistentList):
                out[key] = [v.name for v in value]
            else:
                out[key] = value
        return out
    shapes = root['shapes']
    index = root['index']
    keys = list(index.keys())
    assert keys == sorted(keys), 'the index is out of order'
    return {
        'shapes': {name: shape_view(shapes[name]) for name in sorted(shapes)},
        'order': [shape.name for shape in root['list']],
        'labels': sorted(root['labels']),
        'index': {'count': len(keys), 'keySum': sum(keys), 'valueLength': sum(len(v) for v in index.values()),
                  'samples': {str(k): index.get(k) for k in (0, 1, 9999, 19999, 25000, 30001, -5)}},
    }


def write(path):
    connection = Connection(FileStorage(path))
    root = connection.get_root()
    a, b, c = Shape(), Shape(), Shape()
    for shape, name, size in ((a, 'a', 1), (b, 'b', 2), (c, 'c', -3)):
        shape.name = name
        shape.size = size
        shape.ratio = size / 4.0
        shape.flag = size > 1
        shape.nothing = None
        shape.blob = bytes([0, 1, 2, 255])
        shape.tags = ['t%d' % size, 'shared']
        shape.point = (size, size * 10)
        shape.meta = {'x': size, 'y': size * size}
        shape.scores = {1: 'one', 2: 'two'}
    a.parent, b.parent, c.parent = b, a, a          # a cycle, and a shared reference
    c.nothing = 'something'
    root['shapes'] = PersistentDict({'a': a, 'b': b, 'c': c})
    root['list'] = PersistentList([a, b, c, a])     # a shared twice
    root['labels'] = PersistentSet(['red', 'green'])
    index = root['index'] = BTree()
    for key in range(20000):
        index[key] = 'v%d' % key
    connection.commit()
    print(json.dumps(view(root), sort_keys=True))


def main():
    where, command = sys.argv[1], sys.argv[2]
    if command == 'write':
        return write(where)
    connection = connect(where)
    root = connection.get_root()
    if command == 'change':
        shapes = root['shapes']
        shapes['a'].size = 100
        shapes['a'].tags.append('from python')
        shapes['a']._p_note_change()
        d = Shape()
        d.name, d.size, d.ratio, d.flag, d.nothing = 'd', 4, 1.0, True, None
        d.blob, d.tags, d.point, d.meta, d.scores, d.parent = b'', [], (4, 40), {}, {}, shapes['b']
        shapes['d'] = d
        root['list'].append(d)
        root['labels'].add('python')
        for key in range(30000, 30005):
            root['index'][key] = 'py%d' % key
        root['index'][-5] = 'minus five'
        del root['index'][3]
        connection.commit()
    print(json.dumps(view(root), sort_keys=True))
    connection.storage.close()


if __name__ == '__main__':
    main()

"""Python Durus 4.3's side of the pickle tests (see pickle_fixtures.py).

    durus_pickles.py make          builds a FileStorage of many kinds of
                                   objects; prints every record (hex), its
                                   references, class and state view
    durus_pickles.py load FILE     stores the records FILE names ({"oid":
                                   "record hex"}) in a new FileStorage, loads
                                   each through a Connection; prints class,
                                   state view and what Durus writes for it again
    durus_pickles.py pickles FILE  unpickles each hex pickle in FILE (a JSON
                                   list) as Durus would; prints views or errors
    durus_pickles.py samples       pickles sample values at protocols 0 to 4
"""
import collections
import datetime
import json
import os
import pickle
import sys
import tempfile
from io import BytesIO

from durus.btree import BTree
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.persistent_set import PersistentSet
from durus.serialize import ObjectReader, ObjectWriter, unpack_record, split_oids
from durus.utils import int8_to_str, str_to_int8

from pickle_fixtures import Thing, Plain, Ref, view, persistent_load


def every_kind_of_value():
    """A dict of attributes holding each kind of value Durus pickles."""
    shared_tuple = ('shared', 'tuple')
    return dict(
        text='hello', accented='héllo wörld €', astral='🐍', empty='', char='x',
        zero=0, small=255, medium=256, word=65535, big32=65536, max32=2**31 - 1,
        min32=-2**31, negative=-1, over32=2**31, max64=2**63 - 1, min64=-2**63,
        over64=2**63, huge=2**200 + 12345, negative_huge=-2**100,
        pi=3.141592653589793, negative_zero=-0.0, infinity=float('inf'), nan=float('nan'),
        yes=True, no=False, nothing=None,
        blob=bytes(range(256)), no_bytes=b'', one_byte=b'\xe9', ascii_bytes=b'abc',
        tuple=(1, 'two', 3.0, None), pair=(1, 2), one=(1,), no_tuple=(),
        list=[1, [2, [3, [4]]], {'k': 'v'}], no_list=[],
        dict={'a': 1, 2: 'b', (3, 4): [5], None: True, 1.5: b'f', frozenset([1]): 'fs'},
        no_dict={}, set={1, 2, 3}, no_set=set(), frozenset=frozenset(['x', 'y']),
        no_frozenset=frozenset(),
        nested={'list': [{'deep': [1, 2, {'deeper': (1, [2, ('t', {'x': None})])}]}]},
        shared_1=shared_tuple, shared_2=shared_tuple,
        plain=Plain(a=1, b=[2]), bare_plain=Plain(),
        when=datetime.datetime(2024, 2, 29, 13, 14, 15, 161718),
        ordered=collections.OrderedDict([('z', 1), ('a', 2)]),
        klass=Plain,
        many=list(range(2500)), thousand={i: str(i) for i in range(1000)},
        bigger_dict={i: i for i in range(1001)},
    )


def make():
    directory = tempfile.mkdtemp()
    connection = Connection(FileStorage(os.path.join(directory, 'made.durus')))
    root = connection.get_root()
    thing = Thing()
    thing.__dict__.update(every_kind_of_value())
    friend = Thing()
    friend.name = 'friend'
    thing.friend = friend
    thing.me = thing                     # a reference to itself
    thing.friends = [friend, friend, (friend, thing)]
    a, b = Thing(), Thing()              # a cycle of references
    a.other, b.other = b, a
    a.name, b.name = 'a', 'b'
    root['thing'] = thing
    root['cycle'] = a
    root['dict'] = PersistentDict(x=1, y=[thing, 'two'], z={'nested': PersistentDict(deep=True)})
    root['list'] = PersistentList([1, 'two', friend, PersistentList([3])])
    root['set'] = PersistentSet(['a', 'b', 3, (4, 5)])
    tree = BTree()
    for i in range(300):
        tree[i] = 'value %d' % i if i % 7 else Thing()
    root['tree'] = tree
    # What Swift cannot write back byte for byte: Python's memo shares by
    # identity. A list used twice (aliased), and two equal strings that are
    # distinct objects.
    odd = Thing()
    alias = [1, 2]
    odd.alias_a, odd.alias_b = alias, alias
    odd.s1, odd.s2 = ''.join(['dup', 'licate']), ''.join(['dup', 'licate'])
    root['odd'] = odd
    connection.commit()
    storage = connection.get_storage()
    reader = ObjectReader(StubConnection())
    records = []
    for oid, record in storage.gen_oid_record(start_oid=int8_to_str(0)):
        _, data, refs = unpack_record(record)
        klass = pickle.loads(data)
        records.append(dict(
            oid=str_to_int8(oid), data=data.hex(),
            refs=[str_to_int8(r) for r in split_oids(refs)],
            klass=[klass.__module__, klass.__name__],
            state=view(reader.get_state(data))))
    print(json.dumps(dict(records=records, divergent=[str_to_int8(odd._p_oid)])))


class StubCache(object):
    def get_instance(self, oid, klass, connection):
        return Ref(str_to_int8(oid), klass)


class StubConnection(object):
    """Enough of a Connection for Durus's own ObjectReader."""
    def get_cache(self):
        return StubCache()


def load(path):
    with open(path) as f:
        records = {int(oid): bytes.fromhex(record) for oid, record in json.load(f).items()}
    directory = tempfile.mkdtemp()
    storage = FileStorage(os.path.join(directory, 'swift.durus'))
    while max(records) > str_to_int8(storage.new_oid()):
        pass
    storage.begin()
    for oid, record in records.items():
        storage.store(int8_to_str(oid), record)
    storage.end()
    connection = Connection(storage)
    objects = {}
    for oid in records:
        obj = connection.get(oid)
        writer = ObjectWriter(connection)
        data, refs = writer.get_state(obj)
        writer.close()
        objects[str(oid)] = dict(
            klass=[type(obj).__module__, type(obj).__name__],
            state=view(obj.__getstate__()),
            resaved=data.hex(),
            refs=[str_to_int8(r) for r in split_oids(refs)])
    print(json.dumps(dict(objects=objects)))


def unpickle(path):
    with open(path) as f:
        pickles = json.load(f)
    results = []
    for hex_pickle in pickles:
        unpickler = pickle.Unpickler(BytesIO(bytes.fromhex(hex_pickle)))
        unpickler.persistent_load = persistent_load
        try:
            results.append(dict(view=view(unpickler.load())))
        except Exception as error:
            results.append(dict(error='%s: %s' % (type(error).__name__, error)))
    print(json.dumps(results))


def samples():
    values = every_kind_of_value()
    values['persistent'] = Ref(7, Thing)
    values['everything'] = every_kind_of_value()
    def persistent_id(obj):
        if isinstance(obj, Ref):
            return int8_to_str(obj.oid), obj.klass
        return None
    out = []
    for name, value in values.items():
        entry = dict(name=name, view=view(value))
        for protocol in range(5):
            stream = BytesIO()
            pickler = pickle.Pickler(stream, protocol)
            pickler.persistent_id = persistent_id
            pickler.dump(value)
            entry['p%d' % protocol] = stream.getvalue().hex()
        out.append(entry)
    print(json.dumps(out))


if __name__ == '__main__':
    if os.environ.get('PYTHONHASHSEED') != '0':
        # Sets of strings iterate (and pickle) in an order that depends on
        # the hash seed: one seed for every run keeps the order of a set the
        # same when another process loads and pickles it again.
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, PYTHONHASHSEED='0'))
    command = sys.argv[1]
    if command == 'make':
        make()
    elif command == 'load':
        load(sys.argv[2])
    elif command == 'pickles':
        unpickle(sys.argv[2])
    elif command == 'samples':
        samples()
    else:
        sys.exit(__doc__)

"""Reads a SHELF-1 file back with Durus 4.3, for FileStorageTests.

    read_file.py PATH [--objects]

Prints JSON: every record Durus's FileStorage iterates (OID -> hex) and, for
each, what load() returns, so a test can compare both with what Swift wrote.
With --objects it also opens the file for writing through a Connection, walks
root['tree'] (a BTree written by make_files.py), commits one new object and
reports the item count and the OID Durus gave it: proof the file is fully usable by Durus.
"""
import json
import sys

from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent_dict import PersistentDict
from durus.utils import str_to_int8

path = sys.argv[1]
storage = FileStorage(path, readonly=True)
iterated = {str(str_to_int8(oid)): record.hex() for oid, record in storage.gen_oid_record()}
loaded = {str(str_to_int8(oid)): storage.load(oid).hex() for oid, _ in storage.gen_oid_record()}
storage.close()
result = dict(records=iterated, loaded=loaded)
if '--objects' in sys.argv:
    connection = Connection(FileStorage(path))
    tree = connection.get_root()['tree']
    result['items'] = sum(1 for key, item in tree.items() if item['i'] == key)
    connection.get_root()['written_by_python'] = new = PersistentDict(ok=True)
    connection.commit()
    result['new_oid'] = str_to_int8(new._p_oid)
    connection.get_storage().close()
json.dump(result, sys.stdout)

#!/usr/bin/env python3
"""Writes record-layout vectors with the real Durus 4.3 `pack_record`.

Run with the Python of the venv that `scripts/test` makes:
    .build/durus-venv/bin/python scripts/make-record-vectors.py > Tests/DurusTests/Vectors/records.json
The Swift tests compare `Record(oid:data:references:)` against every vector,
and re-run this script to compare again when DURUS_PYTHON names that Python.
"""
import json
import random
import zlib

from durus.serialize import pack_record, unpack_record, split_oids
from durus.utils import int8_to_str, str_to_int8

rng = random.Random(4_3)
cases = [
    (0, b"", []),
    (1, b"x", [0]),
    (5, b"hello", [1, 3]),
    (2**64 - 1, b"\x00\xff" * 3, [2, 2**63, 2**64 - 2]),
    (255, zlib.compress(b"compressed state " * 20), [256, 65536, 2**32]),
]
for _ in range(15):
    oid = rng.randrange(2**64)
    data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
    refs = sorted(set(rng.randrange(2**40) for _ in range(rng.randrange(0, 12))) - {oid})
    cases.append((oid, data, refs))

vectors = []
for oid, data, refs in cases:
    record = pack_record(int8_to_str(oid), data, b"".join(int8_to_str(r) for r in refs))
    back_oid, back_data, back_refs = unpack_record(record)
    assert str_to_int8(back_oid) == oid and back_data == data
    assert [str_to_int8(r) for r in split_oids(back_refs)] == refs
    vectors.append({"oid": str(oid), "data": data.hex(), "refs": [str(r) for r in refs], "record": record.hex()})
print(json.dumps(vectors, indent=1))

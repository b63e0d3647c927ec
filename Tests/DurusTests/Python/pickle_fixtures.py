"""Classes the pickle tests store, and the tagged JSON view both sides print.

A view is a list whose first item names the kind: ["int", "42"],
["str", "text"], ["list", view, ...], ["dict", [kview, vview], ...],
["ref", "oid", module, name] for a persistent reference, and for any other
object its reduce form: ["newobj"|"reduce", module, name, [args], state|null,
[list items], [[key, value], ...]]. Scalars are strings, so nothing depends
on how JSON prints numbers: floats are their 8 big-endian bytes in hex, big
integers their minimal little-endian two's complement in hex.
"""
import copyreg
import struct

from durus.persistent import Persistent, PersistentBase
from durus.utils import str_to_int8


class Thing(Persistent):
    """A user class: its state is its __dict__."""


class Plain(object):
    """Not persistent: pickled inside the state of whatever holds it."""
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class Old(object):
    """Stands for a Python 2 old-style class in hand-written pickles."""


class Ref(object):
    """What the tests' persistent_load makes of a Durus persistent id."""
    def __init__(self, oid, klass):
        self.oid = oid
        self.klass = klass


def persistent_load(pid):
    oid, klass = pid
    return Ref(str_to_int8(oid), klass)


def big_hex(n):
    length = 1
    while True:
        try:
            return n.to_bytes(length, 'little', signed=True).hex()
        except OverflowError:
            length += 1


def view(x):
    if isinstance(x, Ref):
        return ["ref", str(x.oid), x.klass.__module__, x.klass.__name__]
    if isinstance(x, PersistentBase):
        return ["ref", str(str_to_int8(x._p_oid)), type(x).__module__, type(x).__name__]
    if x is None:
        return ["none"]
    if x is True or x is False:
        return ["bool", "true" if x else "false"]
    if type(x) is int:
        if -2**63 <= x < 2**63:
            return ["int", str(x)]
        return ["bigint", big_hex(x)]
    if type(x) is float:
        return ["float", struct.pack('>d', x).hex()]
    if type(x) is bytes:
        return ["bytes", x.hex()]
    if type(x) is str:
        return ["str", x]
    if type(x) is tuple:
        return ["tuple"] + [view(i) for i in x]
    if type(x) is list:
        return ["list"] + [view(i) for i in x]
    if type(x) is dict:
        return ["dict"] + [[view(k), view(v)] for k, v in x.items()]
    if type(x) is set:
        return ["set"] + [view(i) for i in x]
    if type(x) is frozenset:
        return ["frozenset"] + [view(i) for i in x]
    if isinstance(x, type) or callable(x) and hasattr(x, '__qualname__'):
        return ["global", x.__module__, x.__qualname__]
    reduced = tuple(x.__reduce_ex__(2)) + (None, None, None)
    func, args, state, listitems, dictitems = reduced[:5]
    kind = "reduce"
    if func is copyreg.__newobj__:
        kind, func, args = "newobj", args[0], args[1:]
    return [kind, func.__module__, func.__qualname__, [view(a) for a in args],
            None if state is None else view(state),
            [view(i) for i in (listitems or [])],
            [[view(k), view(v)] for k, v in (dictitems or [])]]

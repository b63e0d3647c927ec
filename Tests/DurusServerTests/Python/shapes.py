"""The Shape class shared by Python and Swift in the object-graph tests:
a Durus Persistent whose attributes hold every kind of value the bridge maps."""
from durus.persistent import Persistent


class Shape(Persistent):
    pass

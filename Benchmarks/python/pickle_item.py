"""The class `durus-bench pickles` shares between Python and Swift: Swift maps
it with @Persistent(python: "pickle_item.Item")."""
from durus.persistent import Persistent


class Item(Persistent):
    def __init__(self, number):
        self.name = "item-%d" % number
        self.value = number
        self.tags = ["t%d" % (number % 7), "k%d" % (number % 13)]

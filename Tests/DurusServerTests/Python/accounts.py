"""The Account class of the server tests: its records are read and written
by Swift too (class pickle `accounts.Account`, state {'balance': int})."""
from durus.persistent import Persistent


class Account(Persistent):
    def __init__(self, balance):
        self.balance = balance

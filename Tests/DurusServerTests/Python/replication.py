"""A Python Durus 4.3 client at one site of a replication group.

    python replication.py ADDRESS write KEY VALUE     commits root[KEY] = VALUE, then reads it back
                                                      on a new connection to the same site: "read VALUE"
    python replication.py ADDRESS watch KEY           reads root[KEY] ("before V"), waits for a line on
                                                      stdin, synchronizes (abort) and reads it again ("after V")
    python replication.py ADDRESS transfer SECONDS SEED
                                                      bank transfers (the accounts of bank.py setup), auditing
                                                      the total as it goes; a connection the site drops (its
                                                      commit's outcome unknown after a failover) is opened
                                                      again: "transfers=.. conflicts=.. reconnects=.."
"""
import random
import socket
import sys
import time

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import ConflictError
from durus.persistent_dict import PersistentDict
from durus.utils import ShortRead

from accounts import Account


def connect(address):
    host, port = address.rsplit(':', 1)
    return Connection(ClientStorage(host=host, port=int(port)))


def audit(connection):
    while True:
        try:
            connection.abort()
            accounts = connection.get_root()['accounts']
            return sum(accounts[name].balance for name in sorted(accounts))
        except ConflictError:
            continue


def tally_of(connection, key):
    """This client's tally (root[key]['n'], made when missing): counted in each transfer's commit."""
    while True:
        try:
            connection.abort()
            root = connection.get_root()
            if key not in root:
                root[key] = PersistentDict({'n': Account(0)})
                connection.commit()
            return root[key]['n'].balance
        except ConflictError:
            continue


def transfer(address, seconds, rng, key):
    connection = connect(address)
    expected = audit(connection)
    tally_of(connection, key)
    transfers = conflicts = reconnects = 0
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            accounts = connection.get_root()['accounts']
            source, target = rng.sample(sorted(accounts), 2)
            amount = rng.randint(1, 20)
            accounts[source].balance -= amount
            accounts[target].balance += amount
            connection.get_root()[key]['n'].balance += 1
            connection.commit()
            transfers += 1
            if transfers % 10 == 0:
                total = audit(connection)
                if total != expected:
                    print('AUDIT FAILED total=%d expected=%d' % (total, expected))
                    sys.exit(1)
        except ConflictError:
            conflicts += 1
            connection.abort()
        except (ShortRead, OSError):
            reconnects += 1
            time.sleep(0.1)
            connection = connect(address)
    total = audit(connection)
    if total != expected:
        print('AUDIT FAILED total=%d expected=%d' % (total, expected))
        sys.exit(1)
    while True:
        try:
            tally = tally_of(connection, key)
            break
        except (ShortRead, OSError):
            time.sleep(0.1)
            connection = connect(address)
    print('transfers=%d conflicts=%d reconnects=%d tally=%d' % (transfers, conflicts, reconnects, tally))


def main():
    address, command = sys.argv[1], sys.argv[2]
    if command == 'write':
        key, value = sys.argv[3], sys.argv[4]
        connection = connect(address)
        connection.get_root()[key] = value
        connection.commit()
        print('read %s' % connect(address).get_root().get(key))
    elif command == 'watch':
        key = sys.argv[3]
        connection = connect(address)
        print('before %s' % connection.get_root().get(key))
        sys.stdout.flush()
        sys.stdin.readline()
        connection.abort()
        print('after %s' % connection.get_root().get(key))
    elif command == 'transfer':
        transfer(address, float(sys.argv[3]), random.Random(int(sys.argv[4])), 'tally%s' % sys.argv[4])


main()

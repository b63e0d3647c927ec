"""Accounts shared by Python and Swift clients in the server tests.

An Account's record (accounts.py) is the pickled class `accounts.Account` and the pickled
state {'balance': int}; the Swift tests read and write that record directly.

    python bank.py ADDRESS setup ACCOUNTS AMOUNT
    python bank.py ADDRESS transfer SECONDS SEED    -> transfers=.. conflicts=.. audits=..
    python bank.py ADDRESS audit                     -> total=..
    python bank.py ADDRESS balances                  -> a0=.. a1=.. ...
    python bank.py ADDRESS bump NAME AMOUNT          (waits for a line on stdin before committing)
    python bank.py ADDRESS count SECONDS NAME        -> commits=..  (a0 and NAME each +1 per commit)
"""
import random
import sys
import time

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import ConflictError
from durus.persistent_dict import PersistentDict

from accounts import Account


def connect(address):
    if ':' in address:
        host, port = address.rsplit(':', 1)
        return Connection(ClientStorage(host=host, port=int(port)))
    return Connection(ClientStorage(address=address))


def audit(connection):
    while True:
        try:
            connection.abort()
            accounts = connection.get_root()['accounts']
            return sum(accounts[name].balance for name in sorted(accounts))
        except ConflictError:
            continue


def main():
    address, command = sys.argv[1], sys.argv[2]
    connection = connect(address)
    root = connection.get_root()
    if command == 'setup':
        count, amount = int(sys.argv[3]), int(sys.argv[4])
        accounts = PersistentDict()
        for index in range(count):
            accounts['a%d' % index] = Account(amount)
        root['accounts'] = accounts
        connection.commit()
        print('oids %s' % ' '.join(
            '%s=%d' % (name, int.from_bytes(accounts[name]._p_oid, 'big'))
            for name in sorted(accounts)))
    elif command == 'transfer':
        seconds, rng = float(sys.argv[3]), random.Random(int(sys.argv[4]))
        expected = audit(connection)
        transfers = conflicts = audits = 0
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                accounts = root['accounts']
                names = sorted(accounts)
                source, target = rng.sample(names, 2)
                amount = rng.randint(1, 20)
                accounts[source].balance -= amount
                accounts[target].balance += amount
                connection.commit()
                transfers += 1
            except ConflictError:
                conflicts += 1
                connection.abort()
            if transfers % 25 == 0:
                total = audit(connection)
                audits += 1
                if total != expected:
                    print('AUDIT FAILED total=%d expected=%d' % (total, expected))
                    sys.exit(1)
        print('transfers=%d conflicts=%d audits=%d' % (transfers, conflicts, audits))
    elif command == 'count':
        seconds, name = float(sys.argv[3]), sys.argv[4]
        commits = conflicts = 0
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                accounts = root['accounts']
                accounts['a0'].balance += 1
                accounts[name].balance += 1
                connection.commit()
                commits += 1
            except ConflictError:
                conflicts += 1
                connection.abort()
        print('commits=%d conflicts=%d' % (commits, conflicts))
    elif command == 'audit':
        print('total=%d' % audit(connection))
    elif command == 'balances':
        accounts = root['accounts']
        print(' '.join('%s=%d' % (name, accounts[name].balance) for name in sorted(accounts)))
    elif command == 'bump':
        name, amount = sys.argv[3], int(sys.argv[4])
        account = root['accounts'][name]
        account.balance += amount
        print('loaded %d' % (account.balance - amount))
        sys.stdout.flush()
        sys.stdin.readline()
        tries = 0
        while True:
            tries += 1
            try:
                connection.commit()
                break
            except ConflictError as error:
                print('conflict %s' % type(error).__name__)
                connection.abort()
                account = connection.get_root()['accounts'][name]
                account.balance += amount
        print('committed %d after %d tries' % (account.balance, tries))
    connection.storage.close()


if __name__ == '__main__':
    main()

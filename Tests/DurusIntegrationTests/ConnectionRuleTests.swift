import Durus
import DurusBerkeleyDB
import DurusTestSupport
import Foundation
import Testing

/// The source document's rules, each as a named test, on both storages,
/// with two or more connections over one Database.
enum StorageKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory, berkeleyDB
    var testDescription: String { rawValue }
}

/// A database over a fresh storage of `kind`; `cleanup` removes its files.
func makeDatabase(_ kind: StorageKind, cacheSize: Int = 1000, compression: Bool = true,
                  name: String = #function) throws -> (Database, () -> Void) {
    let storage: any Storage
    var cleanup: () -> Void = {}
    switch kind {
    case .memory: storage = MemoryStorage()
    case .berkeleyDB:
        let dir = TemporaryDirectory(name)
        storage = try openStore(dir.path)
        cleanup = { try? storage.close(); dir.remove() }
    }
    let database = try Database(storage: storage, root: Bank.self, types: testTypes,
                                configuration: .init(cacheSize: cacheSize, compression: compression))
    return (database, cleanup)
}

@Suite struct ConnectionRuleTests {
    /// "Implicit object loading": a new object gets its OID at commit, not before.
    @Test(arguments: StorageKind.allCases)
    func newObjectGetsItsOIDAtCommit(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        let a = try db.open()
        let account = Account(owner: "alice")
        #expect(account.oid == nil && account.connection == nil)
        try a.root(Bank.self).accounts["alice"] = account
        #expect(account.oid == nil)
        try a.commit()
        #expect(account.oid != nil)
        #expect(account.connection === a)
        let b = try db.open()
        #expect(try b.root(Bank.self).accounts["alice"]?.owner == "alice")
    }

    /// "ACID": degree 3 isolation: reads are repeatable until commit or abort.
    @Test(arguments: StorageKind.allCases)
    func readsAreRepeatableUntilTheTransactionEnds(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { try $0.root(Bank.self).accounts["x"] = Account(owner: "x", balance: 1) }
        let a = try db.open()
        let b = try db.open()
        let seenByA = try #require(try a.root(Bank.self).accounts["x"])
        #expect(seenByA.balance == 1)
        try #require(try b.root(Bank.self).accounts["x"]).balance = 2
        try b.commit()
        #expect(seenByA.balance == 1, "the same transaction sees the same state")
        a.abort()
        #expect(seenByA.balance == 2, "after abort, the other client's commit is visible")
    }

    /// "ACID": only committed data is seen.
    @Test(arguments: StorageKind.allCases)
    func uncommittedChangesAreInvisibleToOthers(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { try $0.root(Bank.self).accounts["x"] = Account(owner: "x", balance: 1) }
        let a = try db.open()
        let b = try db.open()
        try #require(try a.root(Bank.self).accounts["x"]).balance = 50
        #expect(try #require(try b.root(Bank.self).accounts["x"]).balance == 1)
        a.abort()
        b.abort()
        #expect(try #require(try b.root(Bank.self).accounts["x"]).balance == 1)
    }

    /// "Durus Storage Server conflicts" (4.3's improvement): a commit conflicts
    /// only on objects accessed in this transaction; others are just refreshed.
    @Test(arguments: StorageKind.allCases)
    func writeConflictOnlyForObjectsAccessedInThisTransaction(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { conn in
            let bank = try conn.root(Bank.self)
            bank.accounts["x"] = Account(owner: "x")
            bank.accounts["y"] = Account(owner: "y")
        }
        let a = try db.open()
        let b = try db.open()
        let x = try #require(try a.root(Bank.self).accounts["x"])
        let y = try #require(try a.root(Bank.self).accounts["y"])
        _ = x.balance
        try a.commit()                                   // x was accessed, in the previous transaction
        try #require(try b.root(Bank.self).accounts["x"]).balance = 7
        try b.commit()
        y.balance = 1                                    // touches y only
        try a.commit()                                   // x is stale but untouched: no conflict
        #expect(x.balance == 7, "x was refreshed, not conflicted")
        try a.commit()

        try #require(try b.root(Bank.self).accounts["x"]).balance = 8
        try b.commit()
        _ = try a.root(Bank.self)
        y.balance = 2
        _ = y.owner
        try a.commit()
        _ = x.status
        x.balance = 9                                    // x accessed in this transaction…
        try #require(try b.root(Bank.self).accounts["x"]).balance = 10
        try b.commit()
        #expect(throws: ConflictError.self) { try a.commit() }   // …and changed elsewhere: conflict
        a.abort()
        #expect(x.balance == 10)
    }

    /// "Same object fetched from different connections … the first commit wins."
    @Test(arguments: StorageKind.allCases)
    func firstCommitWins(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { try $0.root(Bank.self).accounts["x"] = Account(owner: "x") }
        let a = try db.open()
        let b = try db.open()
        let xa = try #require(try a.root(Bank.self).accounts["x"])
        let xb = try #require(try b.root(Bank.self).accounts["x"])
        #expect(xa !== xb, "one object, two connections, two instances")
        xa.balance = 1
        xb.balance = 2
        try a.commit()
        #expect { try b.commit() } throws: { ($0 as? ConflictError)?.kind == .write }
        b.abort()
        #expect(xb.balance == 1)
    }

    /// The storage server raises a read conflict for an object committed by
    /// another client since this one last synchronized, when this transaction
    /// has already read something that changed.
    @Test(arguments: StorageKind.allCases)
    func readConflictOnStaleLoad(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { conn in
            let bank = try conn.root(Bank.self)
            bank.accounts["x"] = Account(owner: "x")
            bank.accounts["y"] = Account(owner: "y")
        }
        let a = try db.open()
        let b = try db.open()
        let bankA = try a.root(Bank.self)
        let x = try #require(bankA.accounts["x"])
        _ = x.balance                                     // x read in this transaction
        let y = try #require(bankA.accounts["y"])         // y still a ghost
        #expect(y.status == .ghost)
        let bankB = try b.root(Bank.self)
        try #require(bankB.accounts["x"]).balance = 1
        try #require(bankB.accounts["y"]).balance = 1
        try b.commit()
        // Through an accessor (which cannot throw): the transaction is doomed,
        // and its commit throws the read conflict.
        _ = y.balance
        #expect(a.pendingError != nil)
        #expect { try a.commit() } throws: { ($0 as? ConflictError)?.kind == .read }
        a.abort()
        #expect(y.balance == 1 && x.balance == 1)
        try a.commit()

        // Through get(), which throws at once: a fresh connection reads x,
        // holds y as a ghost, and both change elsewhere.
        let c = try db.open()
        let bankC = try c.root(Bank.self)
        _ = try #require(bankC.accounts["x"]).balance
        let ghostY = try #require(bankC.accounts["y"])
        #expect(ghostY.status == .ghost)
        try #require(bankB.accounts["x"]).balance = 2
        try #require(bankB.accounts["y"]).balance = 2
        try b.commit()
        #expect { try c.get(try #require(ghostY.oid)) } throws: { ($0 as? ConflictError)?.kind == .read }
        c.abort()
        #expect(ghostY.balance == 2)
    }

    /// A stale ghost whose other changes this transaction has not seen loads
    /// the new state transparently (no conflict to report).
    @Test(arguments: StorageKind.allCases)
    func staleGhostWithNothingAccessedLoadsFresh(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { try $0.root(Bank.self).accounts["x"] = Account(owner: "x") }
        let a = try db.open()
        let b = try db.open()
        let x = try #require(try a.root(Bank.self).accounts["x"])
        try a.commit()
        try #require(try b.root(Bank.self).accounts["x"]).balance = 5
        try b.commit()
        #expect(x.balance == 5)
        try a.commit()
    }

    /// "If you do an abort, locally modified objects are purged."
    @Test(arguments: StorageKind.allCases)
    func abortPurgesLocalChanges(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { try $0.root(Bank.self).accounts["x"] = Account(owner: "x", balance: 3) }
        let a = try db.open()
        let x = try #require(try a.root(Bank.self).accounts["x"])
        x.balance = 100
        x.history.append(1)
        #expect(x.status == .unsaved)
        a.abort()
        #expect(x.status == .ghost)
        #expect(x.balance == 3 && x.history.isEmpty)
    }

    /// "Newly created persistent objects and conflicts/aborts": on a conflict
    /// the new object is detached (OID forgotten) and can be reused as is.
    @Test(arguments: StorageKind.allCases)
    func newObjectsAreDetachedOnConflictAndReusable(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { try $0.root(Bank.self).accounts["x"] = Account(owner: "x") }
        let a = try db.open()
        let b = try db.open()
        let bankA = try a.root(Bank.self)
        let fresh = Account(owner: "new")
        let nested = Account(owner: "nested")
        bankA.accounts["new"] = fresh
        bankA.note = Note(kind: .memo, text: "hi", about: nested)
        try b.root(Bank.self).accounts["z"] = Account(owner: "z")
        try b.commit()
        #expect(throws: ConflictError.self) { try a.commit() }
        #expect(fresh.oid == nil && fresh.connection == nil && fresh.status == .unsaved)
        #expect(nested.oid == nil && nested.connection == nil)
        a.abort()
        let again = try a.root(Bank.self)
        again.accounts["new"] = fresh
        again.note = Note(kind: .alert, text: "again", about: nested)
        try a.commit()
        #expect(fresh.oid != nil && nested.oid != nil)
        let c = try db.open()
        let bankC = try c.root(Bank.self)
        #expect(bankC.accounts["new"]?.owner == "new")
        #expect(bankC.note?.about?.owner == "nested")
        #expect(Set(bankC.accounts.keys) == ["x", "z", "new"])
    }

    /// An abort leaves new objects untouched, free to link again.
    @Test(arguments: StorageKind.allCases)
    func abortLeavesNewObjectsUntouched(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        let a = try db.open()
        let fresh = Account(owner: "n", balance: 4)
        try a.root(Bank.self).accounts["n"] = fresh
        a.abort()
        #expect(fresh.oid == nil && fresh.balance == 4)
        #expect(try a.root(Bank.self).accounts["n"] == nil)
        try a.root(Bank.self).accounts["n"] = fresh
        try a.commit()
        #expect(fresh.oid != nil)
    }

    /// "Objects from different connections MUST NOT be shared."
    @Test(arguments: StorageKind.allCases)
    func linkingAnObjectOfAnotherConnectionIsAnError(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { try $0.root(Bank.self).accounts["x"] = Account(owner: "x") }
        let a = try db.open()
        let b = try db.open()
        let fromB = try #require(try b.root(Bank.self).accounts["x"])
        try a.root(Bank.self).ledger = [fromB]
        #expect { try a.commit() } throws: {
            guard case DurusError.foreignObject = $0 else { return false }
            return true
        }
        a.abort()
        #expect(try a.root(Bank.self).ledger.isEmpty)
    }

    /// "The same object loaded from different graph paths will be the same object in RAM."
    @Test(arguments: StorageKind.allCases)
    func aGhostReachedByTwoPathsIsOneInstance(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { conn in
            let bank = try conn.root(Bank.self)
            let shared = Account(owner: "shared")
            bank.accounts["s"] = shared
            bank.ledger = [shared, shared]
            bank.note = Note(kind: .memo, text: "t", about: shared)
        }
        let a = try db.open()
        let bank = try a.root(Bank.self)
        let viaDictionary = try #require(bank.accounts["s"])
        #expect(viaDictionary === bank.ledger[0] && bank.ledger[0] === bank.ledger[1])
        #expect(bank.note?.about === viaDictionary)
        #expect(try a.get(try #require(viaDictionary.oid)) === viaDictionary)
    }

    /// "If you load a persistent object with references to 1000 other
    /// persistent objects, only the state of the parent object will be loaded,
    /// but 1000 ghost objects will be created."
    @Test(arguments: StorageKind.allCases)
    func thousandReferencesLoadAsThousandGhosts(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { conn in
            try conn.root(Bank.self).ledger = (0 ..< 1000).map { Account(owner: "a\($0)", balance: $0) }
        }
        let fresh = try db.open()
        let bank = try fresh.root(Bank.self)
        let ledger = bank.ledger
        #expect(fresh.loadCount == 1, "one load: the root's state")
        #expect(ledger.count == 1000)
        #expect(ledger.allSatisfy { $0.status == .ghost })
        #expect(ledger[500].balance == 500)
        #expect(fresh.loadCount == 2)
    }

    /// "Keeping around persistent object references between transactions":
    /// with prompt garbage collection a kept reference can go stale; linking
    /// it again is refused as a conflict, not stored as a dangling reference.
    @Test func aStaleReferenceToCollectedGarbageConflicts() throws {
        let (db, cleanup) = try makeDatabase(.berkeleyDB)
        defer { cleanup() }
        try db.transaction { try $0.root(Bank.self).accounts["x"] = Account(owner: "x") }
        let a = try db.open()
        let b = try db.open()
        let kept = try #require(try a.root(Bank.self).accounts["x"])
        try a.commit()
        try b.root(Bank.self).accounts["x"] = nil        // x becomes garbage, collected at once
        try b.commit()
        try a.root(Bank.self).ledger = [kept]
        #expect { try a.commit() } throws: { $0 is ConflictError }
        a.abort()
        #expect(try a.root(Bank.self).accounts["x"] == nil)
        #expect(try (db.storage as? BerkeleyDBStorage)?.verify().isClean == true)
    }

    /// Durus's threading rule: connections in different threads over one
    /// database, each committing its own objects, see each other's commits.
    @Test(arguments: StorageKind.allCases)
    func connectionsOnSeveralThreadsSeeEachOthersCommits(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { conn in
            let bank = try conn.root(Bank.self)
            for i in 0 ..< 4 { bank.accounts["t\(i)"] = Account(owner: "t\(i)") }
        }
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            for _ in 0 ..< 25 {
                _ = try? db.transaction(retries: 50) { conn in
                    try #require(try conn.root(Bank.self).accounts["t\(i)"]).balance += 1
                }
            }
        }
        let total = try db.transaction { conn in try conn.root(Bank.self).accounts.values.map(\.balance).reduce(0, +) }
        #expect(total == 100)
    }

    /// A pooled connection is synchronized before it runs a transaction: a
    /// read-only transaction sees what others committed since it last ran.
    @Test(arguments: StorageKind.allCases)
    func pooledConnectionsSeeLaterCommits(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { try $0.root(Bank.self).accounts["x"] = Account(owner: "x", balance: 1) }
        #expect(try db.transaction { try $0.root(Bank.self).accounts["x"]?.balance } == 1)
        let other = try db.open()
        try #require(try other.root(Bank.self).accounts["x"]).balance = 2
        try other.commit()
        #expect(try db.transaction { try $0.root(Bank.self).accounts["x"]?.balance } == 2)
    }

    /// `transaction(retries:)` aborts and runs again on a conflict.
    @Test(arguments: StorageKind.allCases)
    func transactionRetriesAfterAConflict(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { try $0.root(Bank.self).accounts["x"] = Account(owner: "x") }
        let other = try db.open()
        var runs = 0
        let result = try db.transaction(retries: 2) { conn -> Int in
            runs += 1
            let x = try #require(try conn.root(Bank.self).accounts["x"])
            x.balance += 10
            if runs == 1 {                                 // someone else gets there first
                try #require(try other.root(Bank.self).accounts["x"]).balance = 5
                try other.commit()
            }
            return x.balance
        }
        #expect(runs == 2)
        #expect(result == 15)
        #expect(throws: ConflictError.self) {
            try db.transaction(retries: 0) { conn in
                try #require(try conn.root(Bank.self).accounts["x"]).balance += 1
                other.abort()
                try #require(try other.root(Bank.self).accounts["x"]).balance = 0
                try other.commit()
            }
        }
    }
}

import CBerkeleyDB
import Durus
@testable import DurusBerkeleyDB
import DurusTestSupport
import Foundation
import Testing

/// Reference counts in format 2: an object referenced once has no count
/// row (most objects: a new one costs one row, not two); counts of 0 and of
/// 2 or more have rows; a store of format 1 is read as it was written and
/// brought to format 2 when opened for writing.
@Suite struct CountFormatTests {
    /// Every count row: OID → count.
    static func rows(_ storage: BerkeleyDBStorage) throws -> [OID: UInt64] {
        var rows: [OID: UInt64] = [:]
        try storage.refcounts.scan(txn: nil) { key, value in
            rows[OID(bytes: key)!] = UInt64(bigEndian: value.loadUnaligned(as: UInt64.self))
            return true
        }
        return rows
    }

    static func format(_ storage: BerkeleyDBStorage) throws -> UInt64 {
        try storage.meta.uint64("format", txn: nil)
    }

    @Test func onlyCountsOtherThanOneHaveRows() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try openStore(dir.path)
        defer { try? storage.close() }
        #expect(try Self.format(storage) == 2)
        let root = try storage.newOID()
        let items = try storage.newOIDs(count: 100)
        let shared = try storage.newOID()
        // 100 items referenced once, one object referenced by the root and by item 0.
        try storage.commit([Record(oid: root, data: [0], references: items + [shared]),
                            Record(oid: items[0], data: [1], references: [shared])]
            + items.dropFirst().map { Record(oid: $0, data: [2], references: []) }
            + [Record(oid: shared, data: [3], references: [])])
        #expect(try Self.rows(storage) == [shared: 2], "one row, for the one object referenced twice")
        #expect(try storage.verify().isClean)

        // Item 0 lets go of `shared` (2 → 1: its row goes); the root drops
        // items 1 and 2 (1 → 0: collected, rows and all).
        try storage.commit([Record(oid: items[0], data: [1], references: []),
                            Record(oid: root, data: [0], references: [items[0]] + items.dropFirst(3) + [shared])])
        #expect(try Self.rows(storage).isEmpty)
        #expect(try storage.storedOIDs() == Set([root, shared] + [items[0]] + items.dropFirst(3)))
        #expect(try storage.verify().isClean)

        // A new object nothing references is counted 0 (a row) and collected.
        let lonely = try storage.newOID()
        try storage.commit([Record(oid: lonely, data: [4], references: [])])
        #expect(try !storage.storedOIDs().contains(lonely))
        #expect(try Self.rows(storage).isEmpty)
        #expect(try storage.verify().isClean)
    }

    /// Rewrites an open store of format 2 as format 1 would have written it:
    /// every stored object but the root has a count row (of 1 where format 2
    /// has none), queued garbage has none, and the format says 1. Adds one
    /// queued garbage object, `garbage`, as a crash before its drain leaves it.
    static func rewriteAsFormat1(_ storage: BerkeleyDBStorage, garbage: OID) throws {
        try storage.writeTransaction { txn in
            try storage.records.put(garbage, Record(oid: garbage, data: [9], references: []).bytes, txn: txn)
            try storage.garbage.put(garbage, [], txn: txn)
            var counters = storage.writer.withLock { $0 }
            counters.objects += 1
            counters.bytes += UInt64(Record(oid: garbage, data: [9], references: []).bytes.count)
            try storage.writeCounters(counters, txn: txn)
            storage.writer.withLock { $0 = counters }
            var stored: [OID] = []
            try storage.records.scan(txn: txn) { key, _ in
                stored.append(OID(bytes: key)!)
                return true
            }
            for oid in stored where oid != .root && oid != garbage {
                if try storage.refcounts.countIfPresent(oid, txn: txn) == nil { try storage.refcounts.putCount(oid, 1, txn: txn) }
            }
            try storage.meta.putUInt64("format", 1, txn: txn)
        }
    }

    @Test func aFormat1StoreIsReadAsWrittenThenUpgradedWhenOpenedForWriting() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let root: OID, items: [OID], garbage: OID
        do {
            let storage = try openStore(dir.path)
            root = try storage.newOID()
            items = try storage.newOIDs(count: 20)
            garbage = try storage.newOID()
            try storage.commit([Record(oid: root, data: [0], references: items)]
                + items.map { Record(oid: $0, data: [1], references: $0 == items[0] ? [] : [items[0]]) })
            try Self.rewriteAsFormat1(storage, garbage: garbage)
            try storage.close()
        }
        // Read only: format 1 as it is, its queued garbage pending, nothing written.
        do {
            let reader = try openStore(dir.path) { $0.readOnly = true }
            #expect(try Self.format(reader) == 1)
            let report = try reader.verify()
            #expect(report.isClean, "\(report)")
            #expect(report.pendingGarbage == 1)
            try reader.close()
        }
        // Opened for writing: format 2, the queued object counted 0 and then
        // collected; every live object and its count kept.
        let storage = try openStore(dir.path)
        defer { try? storage.close() }
        #expect(try Self.format(storage) == 2)
        #expect(try storage.storedOIDs() == Set([root] + items))
        let report = try storage.verify()
        #expect(report.isClean && report.pendingGarbage == 0, "\(report)")
        // Counts written by format 1 (rows of 1) still count: dropping the
        // root's references to items 1… collects them, item 0 stays.
        try storage.commit([Record(oid: root, data: [0], references: [items[0]])])
        #expect(try storage.storedOIDs() == Set([root, items[0]]))
        #expect(try storage.verify().isClean)
    }

    /// Deletes `oids` as a cycle collection's sweep batch does, then drains.
    static func sweep(_ storage: BerkeleyDBStorage, _ oids: [OID]) throws {
        try storage.writer.withLock { counters in
            var result = counters
            try storage.writeTransaction { txn in
                for oid in oids {
                    let bytes = try #require(try storage.records.get(oid, txn: txn))
                    try storage.deleteObject(oid, bytes, counters: &result, txn: txn)
                }
                try storage.writeCounters(result, txn: txn)
            }
            counters = result
            try storage.collectGarbage(&counters)
        }
    }

    /// A cycle collection sweeps a doomed group in batches; between two,
    /// a commit may store a record under an OID just swept and link it from
    /// a live object. Tried: the doomed cycle X ⇄ P ⇄ Q, X swept alone; then
    /// X stored again (no longer referencing P) and linked from the live L;
    /// then P and Q swept. Survives: X, with the count of L's reference (P's
    /// counted down at its sweep, not twice); the store verifies clean.
    @Test func anObjectSweptThenStoredAgainKeepsItsCount() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try openStore(dir.path)
        defer { try? storage.close() }
        let root = try storage.newOID(), l = try storage.newOID()
        let x = try storage.newOID(), p = try storage.newOID(), q = try storage.newOID()
        try storage.commit([Record(oid: root, data: [0], references: [l]), Record(oid: l, data: [1], references: []),
                            Record(oid: x, data: [2], references: [p]), Record(oid: p, data: [3], references: [x, q]),
                            Record(oid: q, data: [4], references: [p])])
        try Self.sweep(storage, [x])
        #expect(try storage.storedOIDs() == [root, l, p, q])
        try storage.commit([Record(oid: x, data: [5], references: []), Record(oid: l, data: [1], references: [x])])
        try Self.sweep(storage, [p, q])
        #expect(try storage.storedOIDs() == [root, l, x], "x is referenced by l")
        let report = try storage.verify()
        #expect(report.isClean, "\(report)")
        #expect(try Self.rows(storage).isEmpty)
    }
}

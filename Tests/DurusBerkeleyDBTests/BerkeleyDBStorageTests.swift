import CBerkeleyDB
import Durus
import DurusBerkeleyDB
import DurusTestSupport
import Foundation
import Testing

@Suite struct BerkeleyDBStorageTests {
    @Test(arguments: AccessMethod.allCases)
    func storesLoadsAndReopens(method: AccessMethod) throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try openStore(dir.path) { $0.accessMethod = method }
            #expect(storage.accessMethod == method)
            let root = try storage.newOID()
            let a = try storage.newOID()
            let b = try storage.newOID()
            try storage.commit([
                Record(oid: root, data: Array("root".utf8), references: [a, b]),
                Record(oid: a, data: Array("a".utf8), references: [b]),
                Record(oid: b, data: Array("b".utf8), references: []),
            ])
            #expect(storage.objectCount == 3)
            #expect(try storage.load(a).data.elementsEqual("a".utf8))
            #expect(try storage.bulkLoad([b, root]).map(\.oid) == [b, root])
            #expect(throws: DurusError.keyNotFound(99)) { try storage.load(99) }
            try storage.close()
            #expect(throws: DurusError.closed) { try storage.load(root) }
        }
        let reopened = try openStore(dir.path) { $0.accessMethod = method == .btree ? .hash : .btree }
        #expect(reopened.accessMethod == method, "the method chosen at creation is kept")
        #expect(reopened.objectCount == 3)
        #expect(try reopened.storedOIDs() == [0, 1, 2])
        #expect(try reopened.newOID().rawValue >= 3, "OIDs continue after the ones handed out")
        #expect(try reopened.verify().isClean)
        try reopened.close()
    }

    @Test func unreferencedObjectsAreCollectedAtCommitWithCascade() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try openStore(dir.path) { $0.collectionBatchSize = 3 }
        defer { try? storage.close() }
        let root = try storage.newOID()
        let chain = try storage.newOIDs(count: 10)
        var batch = [Record(oid: root, data: [0], references: [chain[0]])]
        for (i, oid) in chain.enumerated() {
            batch.append(Record(oid: oid, data: [UInt8(i)], references: i + 1 < chain.count ? [chain[i + 1]] : []))
        }
        try storage.commit(batch)
        #expect(storage.objectCount == 11)
        #expect(try storage.sync().isEmpty)
        let before = storage.byteCount
        try storage.commit([Record(oid: root, data: [0], references: [])])
        #expect(storage.objectCount == 1, "the whole chain is collected before commit returns")
        #expect(try storage.sync().sorted() == chain)
        #expect(try storage.sync().isEmpty)
        #expect(storage.byteCount < before)
        #expect(try storage.pendingGarbageCount() == 0)
        for oid in chain { #expect(throws: DurusError.keyNotFound(oid)) { try storage.load(oid) } }
        let next = try storage.newOID()
        #expect(next.rawValue > chain.last!.rawValue, "collected OIDs are never handed out again")
        // A new object nothing references is garbage at once; the root never is.
        try storage.commit([Record(oid: next, data: [1], references: [])])
        #expect(try storage.sync() == [next])
        #expect(try storage.load(root).oid == root)
        #expect(try storage.verify().isClean)
    }

    @Test func refusesBadCommitsAndWritesNothing() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try openStore(dir.path)
        defer { try? storage.close() }
        let root = try storage.newOID()
        let child = try storage.newOID()
        try storage.commit([Record(oid: root, data: [1], references: [child]), Record(oid: child, data: [2], references: [])])

        // An OID never handed out.
        #expect(throws: DurusError.oidNotAllocated(1000)) {
            try storage.commit([Record(oid: root, data: [9], references: []), Record(oid: 1000, data: [], references: [])])
        }
        // A reference to an object that does not exist and is not in the commit: a conflict.
        let ghost = try storage.newOID()
        #expect(throws: ConflictError(.write, oids: [ghost])) {
            try storage.commit([Record(oid: root, data: [9], references: [child, ghost])])
        }
        // A reference to collected garbage, as a stale client would send.
        let temp = try storage.newOID()
        try storage.commit([Record(oid: temp, data: [], references: [])])
        #expect(try storage.sync() == [temp])
        #expect(throws: ConflictError(.write, oids: [temp])) {
            try storage.commit([Record(oid: child, data: [3], references: [temp])])
        }
        // A record filed under the wrong key never becomes a Record.
        let wrong = Record(oid: child, data: [4], references: [])
        #expect(throws: DurusError.oidMismatch(key: root, embedded: child)) { try Record(key: root, bytes: wrong.bytes) }

        #expect(try storage.load(root) == Record(oid: root, data: [1], references: [child]))
        #expect(try storage.load(child) == Record(oid: child, data: [2], references: []))
        #expect(storage.objectCount == 2)
        #expect(try storage.verify().isClean)
    }

    /// A commit stores an object whose OID this handle gave out and no
    /// commit stored without looking for its old record, count or garbage
    /// entry. Tried: such objects in a refused commit, referenced twice,
    /// referenced by nobody, and handed out before a reopen; the counts
    /// (checked by `verify`) and collections come out as for any other.
    @Test func newObjectsAreCountedAndCollectedLikeAnyOther() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var storage = try openStore(dir.path)
        let root = try storage.newOID()
        let (a, b, c, missing) = (try storage.newOID(), try storage.newOID(), try storage.newOID(), try storage.newOID())
        #expect(throws: ConflictError(.write, oids: [missing])) {
            try storage.commit([Record(oid: root, data: [1], references: [a]), Record(oid: a, data: [2], references: [missing])])
        }
        #expect(storage.objectCount == 0, "the refused commit stored nothing")
        // The same objects again, now whole: b is referenced twice, c by nobody.
        try storage.commit([Record(oid: root, data: [1], references: [a, b]), Record(oid: a, data: [2], references: [b]),
                            Record(oid: b, data: [3], references: []), Record(oid: c, data: [4], references: [])])
        #expect(try storage.sync() == [c], "a new object nothing references is garbage at once")
        #expect(try storage.storedOIDs() == [root, a, b])
        #expect(try storage.verify().isClean)
        try storage.commit([Record(oid: a, data: [2], references: [])])
        #expect(try storage.storedOIDs() == [root, a, b], "b had two references; one is left")
        try storage.commit([Record(oid: root, data: [1], references: [a])])
        #expect(try storage.sync() == [b])
        #expect(try storage.verify().isClean)

        let late = try storage.newOID()
        try storage.close()
        storage = try openStore(dir.path)
        defer { try? storage.close() }
        try storage.commit([Record(oid: root, data: [1], references: [a, late]), Record(oid: late, data: [5], references: [])])
        #expect(try storage.storedOIDs() == [root, a, late])
        #expect(try storage.load(late).data == [5])
        #expect(try storage.verify().isClean)
    }

    @Test func objectsRelinkedBeforeCollectionSurvive() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try openStore(dir.path)
        defer { try? storage.close() }
        let root = try storage.newOID()
        let a = try storage.newOID()
        let b = try storage.newOID()
        try storage.commit([Record(oid: root, data: [], references: [a]), Record(oid: a, data: [], references: [b]),
                            Record(oid: b, data: [], references: [])])
        // Move b from a to the root and drop a in one commit: b must survive.
        try storage.commit([Record(oid: root, data: [], references: [b])])
        #expect(try storage.storedOIDs() == [root, b])
        try storage.commit([Record(oid: root, data: [], references: [b, a].filter { $0 != a })])
        #expect(try storage.sync() == [a])
        #expect(try storage.verify().isClean)
    }

    @Test func secondWriterIsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let writer = try openStore(dir.path)
        defer { try? writer.close() }
        #expect(throws: DurusError.storeInUse(path: dir.path)) { try openStore(dir.path) }
        _ = try writer.newOID()
    }

    @Test func loadsDoNotWaitForACommitInProgress() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try openStore(dir.path)
        defer { try? storage.close() }
        let root = try storage.newOID()
        let children = try storage.newOIDs(count: 200)
        try storage.commit([Record(oid: root, data: [0], references: children)]
            + children.map { Record(oid: $0, data: [1], references: []) })
        // Many threads load while one thread commits rewrites of the same records.
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 5) { worker in
            for round in 0 ..< 40 {
                do {
                    if worker == 0 {
                        try storage.commit(children.map { Record(oid: $0, data: [UInt8(round % 250)], references: []) })
                    } else {
                        let records = try storage.bulkLoad(children)
                        // Snapshot reads: one bulk load sees one commit's values, never a mix.
                        if Set(records.map { $0.data.first! }).count != 1 { failures.withLock { $0 += 1 } }
                    }
                } catch {
                    failures.withLock { $0 += 1 }
                }
            }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(try storage.verify().isClean)
    }

    @Test func backgroundCheckpointsKeepTheLogBounded() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try openStore(dir.path) {
            $0.logBufferSize = 64 << 10
            $0.logFileSize = 256 << 10
            $0.checkpointInterval = .milliseconds(20)
        }
        defer { try? storage.close() }
        let root = try storage.newOID()
        let payload = [UInt8](repeating: 0xAB, count: 2_000)
        func logFiles() throws -> Int {
            try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("log.") }.count
        }
        // Under a steady stream of commits the count must fall at some point
        // (files removed while commits go on; a starved checkpoint never
        // removed any), then settle once the stream stops.
        var most = 0
        var previous = 0
        var sawRemoval = false
        for round in 0 ..< 20_000 {
            try storage.commit([Record(oid: root, data: payload + [UInt8(round % 256)], references: [])])
            guard round % 50 == 0 else { continue }
            let now = try logFiles()
            if now < previous { sawRemoval = true }
            previous = now
            most = max(most, now)
            if sawRemoval && round >= 3_000 { break }
        }
        #expect(sawRemoval, "no log file was removed while commits went on (most seen: \(most))")
        var remaining = try logFiles()
        for _ in 0 ..< 200 where remaining > 3 {
            Thread.sleep(forTimeInterval: 0.05)
            remaining = try logFiles()
        }
        #expect(remaining <= 3, "log files left: \(remaining); most seen while committing: \(most)")
    }
}

import Synchronization

extension BerkeleyDBStorageTests {
    /// Three commits handed over as one batch (as the server's hub lands
    /// commits waiting behind one another), the middle one referencing an
    /// object that was never stored: the first and the last are stored, in
    /// order, the middle one is refused with a write conflict and leaves
    /// nothing (its new object's OID can still be stored later), and the
    /// store verifies clean.
    @Test func aBatchStoresEachCommitOrRefusesItAlone() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStore(directory.file("store"))
        defer { try? storage.close() }
        let root = try storage.newOID()
        try storage.commit([Record(oid: root, data: [0], references: [])])
        let a = try storage.newOID(), b = try storage.newOID(), c = try storage.newOID(), missing = try storage.newOID()
        let outcomes = storage.commitAwaitingFlush(batch: [
            [Record(oid: root, data: [1], references: [a]), Record(oid: a, data: [1], references: [])],
            [Record(oid: root, data: [2], references: [a, b]), Record(oid: b, data: [2], references: [missing])],
            [Record(oid: root, data: [3], references: [a, c]), Record(oid: c, data: [3], references: [])],
        ])
        #expect(throws: Never.self) { try outcomes[0].get() }
        #expect(throws: ConflictError.self) { try outcomes[1].get() }
        #expect(throws: Never.self) { try outcomes[2].get() }
        #expect(try storage.load(root).data == [3])
        #expect(try storage.load(a).data == [1] && storage.load(c).data == [3])
        #expect(throws: DurusError.self) { try storage.load(b) }
        try storage.commit([Record(oid: root, data: [4], references: [a, b, c]), Record(oid: b, data: [4], references: [])])
        #expect(try storage.load(b).data == [4])
        let report = try storage.verify()
        #expect(report.isClean, "\(report)")
        #expect(storage.objectCount == 4)
    }
}

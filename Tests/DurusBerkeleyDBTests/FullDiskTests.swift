import Durus
import DurusBerkeleyDB
import DurusTestSupport
import Foundation
import Testing

/// A store on a real file system that fills up (a tmpfs, filled by a ballast
/// file): commits are refused with a typed error while it is full, nothing
/// acknowledged is lost, and the same handle commits again once space is freed.
@Suite(.serialized, .enabled(if: SmallDisk.isAvailable, "mounting a tmpfs needs root with CAP_SYS_ADMIN"))
struct FullDiskTests {
    /// What the test expects stored: acknowledged records by OID, all under the root.
    struct Model {
        var root: OID
        var data: [OID: [UInt8]] = [:]

        func rootRecord(adding extra: [OID] = []) -> Record {
            Record(oid: root, data: Array("root".utf8), references: data.keys.sorted() + extra)
        }
    }

    /// One commit that adds an object and rewrites an old one: true when it
    /// was stored, false when refused as a full disk (any other error fails).
    func attempt(_ storage: BerkeleyDBStorage, _ model: inout Model, round: Int) throws -> Bool {
        let data = [UInt8](repeating: UInt8(truncatingIfNeeded: round), count: 3000)
        do {
            let oid = try storage.newOID()
            var records = [Record(oid: oid, data: data, references: []), model.rootRecord(adding: [oid])]
            let old = model.data.keys.sorted().first
            if let old { records.append(Record(oid: old, data: data + [1], references: [])) }
            try storage.commit(records)
            model.data[oid] = data
            if let old { model.data[old] = data + [1] }
            return true
        } catch DurusError.diskFull(let path, let message) {
            #expect(path == storage.path)
            #expect(message.contains("No space left on device"))
            return false
        }
    }

    /// With `closeWhileFull`, the store is closed before space is freed (its
    /// cache cannot be written out then) and reopened after: recovery
    /// rebuilds what the log holds.
    @Test(arguments: [Durability.full, .writeNoSync], [false, true])
    func commitsAreRefusedWhileTheDiskIsFullAndNothingIsLost(_ durability: Durability, closeWhileFull: Bool) throws {
        let disk = try SmallDisk(megabytes: 64)
        defer { disk.remove() }
        let path = disk.path + "/store"
        let configure = { (configuration: inout BerkeleyDBStorage.Configuration) in
            configuration.durability = durability
            configuration.cacheSize = 2 << 20
            configuration.maxLocks = 20_000
            configuration.logFileSize = 2 << 20
        }
        let storage = try openStore(path, configure)
        var model = Model(root: try storage.newOID())
        try storage.commit([model.rootRecord()])
        for round in 0 ..< 100 { #expect(try attempt(storage, &model, round: round)) }
        let acknowledged = model.data

        // Full: 200 tries, each stored (it fit in space already allocated) or refused, typed.
        try disk.fill()
        var refused = 0
        for round in 100 ..< 300 where try !attempt(storage, &model, round: round) { refused += 1 }
        #expect(refused > 150, "only \(refused) of 200 commits met the full disk")
        for (oid, data) in model.data { #expect(try storage.load(oid).data.elementsEqual(data)) }

        if closeWhileFull {
            // The cache cannot be written out: a typed error, the handle closed all the same.
            #expect {
                try storage.close()
            } throws: { error in
                guard case DurusError.diskFull = error else { return false }
                return true
            }
            #expect(throws: DurusError.closed) { try storage.load(model.root) }
            disk.freeSpace()
        } else {
            // Space again: the same handle commits, with nothing reopened or repaired.
            disk.freeSpace()
            for round in 300 ..< 320 { #expect(try attempt(storage, &model, round: round)) }
            try storage.close()
        }

        let reopened = try openStore(path, configure)
        defer { try? reopened.close() }
        #expect(try reopened.storedOIDs() == Set(model.data.keys).union([model.root]))
        for (oid, data) in model.data { #expect(try reopened.load(oid).data.elementsEqual(data)) }
        #expect(acknowledged.keys.allSatisfy { model.data[$0] != nil })
        let report = try reopened.verify()
        #expect(report.isClean, "\(report)")
    }

    /// A backup onto a full disk, or into a directory that cannot be made,
    /// is refused with a typed error naming the backup's directory; the
    /// store it copies is untouched, no partial copy is left, and once space
    /// is freed the same backup succeeds and verifies clean.
    @Test func aBackupOntoAFullDiskIsRefusedTypedAndLeavesNoCopy() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStore(directory.file("live")) { $0.durability = .writeNoSync }
        defer { try? storage.close() }
        let oid = try storage.newOID()
        try storage.commit([Record(oid: oid, data: [UInt8](repeating: 9, count: 400_000), references: [])])

        let blocker = directory.file("a-file")
        try Data([1]).write(to: URL(fileURLWithPath: blocker))
        #expect {
            try storage.backup(to: blocker + "/copy")
        } throws: { error in
            guard case DurusError.io(let path, let message) = error else { return false }
            return path == blocker + "/copy" && message.contains("cannot create the directory")
        }

        let disk = try SmallDisk(megabytes: 64)
        defer { disk.remove() }
        try disk.fill()
        let copy = disk.path + "/copy"
        #expect {
            try storage.backup(to: copy)
        } throws: { error in
            guard case DurusError.diskFull(let path, _) = error else { return false }
            return path == copy
        }
        #expect(!FileManager.default.fileExists(atPath: copy))
        #expect(try storage.load(oid).data.count == 400_000)

        disk.freeSpace()
        try storage.backup(to: copy)
        // Small lock tables: the default ones' region files alone would not fit this disk.
        let restored = try openStore(copy) { $0.maxLocks = 20_000 }
        defer { try? restored.close() }
        #expect(try restored.load(oid).data.elementsEqual([UInt8](repeating: 9, count: 400_000)))
        let report = try restored.verify()
        #expect(report.isClean, "\(report)")
    }

    /// The failed open leaves a half-made environment behind; the open after
    /// space is freed makes the store out of it.
    @Test func aStoreCannotBeCreatedOnAFullDisk() throws {
        let disk = try SmallDisk(megabytes: 64)
        defer { disk.remove() }
        try disk.fill()
        let path = disk.path + "/store"
        #expect {
            try openStore(path)
        } throws: { error in
            guard case DurusError.diskFull(let at, _) = error else { return false }
            return at == path
        }
        disk.freeSpace()
        let storage = try openStore(path) { $0.maxLocks = 20_000 }
        let oid = try storage.newOID()
        try storage.commit([Record(oid: oid, data: [7], references: [])])
        try storage.close()
        let reopened = try openStore(path) { $0.maxLocks = 20_000 }
        #expect(try reopened.load(oid).data.elementsEqual([7]))
        try reopened.close()
    }

    /// A migration into a store whose disk fills up midway stops with a typed
    /// error; the store stays marked as a migration cut short, and once space
    /// is freed, migrating again (as `durus migrate` would be rerun) finishes
    /// it, every record byte-identical.
    @Test func aMigrationThatFillsTheDiskStopsTypedAndFinishesWhenRerun() throws {
        let source = MemoryStorage()
        let oids = try source.newOIDs(count: 20_000)
        let records = oids.enumerated().map { index, oid in
            Record(oid: oid, data: [UInt8](repeating: UInt8(index % 251), count: 1_000),
                   references: index + 1 < oids.count ? [oids[index + 1]] : [])
        }
        // Last batch first: each batch's references are stored before it.
        for batch in stride(from: 0, to: records.count, by: 1_000).reversed() {
            try source.commit(Array(records[batch ..< min(batch + 1_000, records.count)]))
        }
        let disk = try SmallDisk(megabytes: 128)
        defer { disk.remove() }
        let path = disk.path + "/store"
        var configuration = BerkeleyDBStorage.Configuration.migration
        configuration.maxLocks = 20_000
        let store = try BerkeleyDBStorage(path: path, configuration: configuration)
        // About 5 MB free: a quarter of what the 20 MB of records need.
        try disk.fill(leaving: 5 << 20)
        #expect {
            try store.migrate(from: source, batchSize: 1_000)
        } throws: { error in
            guard case DurusError.diskFull(let at, _) = error else { return false }
            return at == path
        }
        try? store.close()

        disk.freeSpace()
        #expect(throws: DurusError.self) { try openStore(path) { $0.maxLocks = 20_000 } }   // cut short: refused
        let rerun = try BerkeleyDBStorage(path: path, configuration: configuration)
        try rerun.migrate(from: source, batchSize: 1_000)
        try rerun.close()
        let migrated = try openStore(path) { $0.maxLocks = 20_000 }
        defer { try? migrated.close() }
        #expect(migrated.objectCount == records.count)
        for record in records { #expect(try migrated.load(record.oid) == record) }
        #expect(try migrated.verify().isClean)
    }
}

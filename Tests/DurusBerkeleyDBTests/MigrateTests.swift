import Durus
import DurusBerkeleyDB
import DurusTestSupport
import Foundation
import Testing

/// `migrate(from:)`: every reachable record arrives byte-identical, the
/// unreachable (cycles included) do not, OIDs continue above the source's.
@Suite struct MigrateTests {
    /// root → a → b; root → f → g → f (a reachable cycle); c ⇄ d and e unreachable.
    static func graph() throws -> (MemoryStorage, reachable: [Record], unreachable: [OID]) {
        let source = MemoryStorage()
        let oids = try source.newOIDs(count: 8)
        let (root, a, b, c, d, e, f, g) = (oids[0], oids[1], oids[2], oids[3], oids[4], oids[5], oids[6], oids[7])
        func r(_ oid: OID, _ refs: [OID]) -> Record { Record(oid: oid, data: Array("object \(oid.rawValue)".utf8), references: refs) }
        let reachable = [r(root, [a, f]), r(a, [b]), r(b, []), r(f, [g]), r(g, [f])]
        try source.commit(reachable + [r(c, [d]), r(d, [c]), r(e, [a])])
        return (source, reachable, [c, d, e])
    }

    /// With and without snapshot reads (``Configuration/migration`` turns
    /// them off); a store migrated without them is reopened with them.
    @Test(arguments: [true, false])
    func copiesTheReachableAndOnlyThat(snapshotReads: Bool) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (source, reachable, unreachable) = try Self.graph()
        let store = try openStore(directory.path) { $0.snapshotReads = snapshotReads }
        var phases: [BerkeleyDBStorage.MigrationProgress.Phase] = []
        try store.migrate(from: source, batchSize: 3) { if phases.last != $0.phase { phases.append($0.phase) } }
        #expect(phases == [.copying, .marking, .counting, .done])
        for record in reachable { #expect(try store.load(record.oid) == record) }
        for oid in unreachable { #expect(throws: DurusError.keyNotFound(oid)) { try store.load(oid) } }
        #expect(store.objectCount == reachable.count)
        #expect(try store.verify().isClean)
        #expect(try store.newOID().rawValue >= 8)
        #expect(throws: DurusError.self) { try store.migrate(from: source) }   // not empty any more
        try store.close()
        let reopened = try openStore(directory.path)
        defer { try? reopened.close() }
        for record in reachable { #expect(try reopened.load(record.oid) == record) }
        #expect(try reopened.verify().isClean)
    }

    /// A Durus file may hold a reference to an OID it has no record for
    /// (our storages refuse to commit one, so the source here only lists its
    /// records). It stays dangling, and the store hands out no OID such a
    /// reference names, even one above every record: a new object must not
    /// turn up behind an old reference.
    @Test func danglingReferencesNeverPointAtNewObjects() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let dangling = OID(502)
        let source = ListedRecords([Record(oid: .root, data: [1], references: [OID(1), dangling]),
                                    Record(oid: OID(1), data: [2], references: [])])
        let store = try openStore(directory.path)
        defer { try? store.close() }
        try store.migrate(from: source)
        #expect(try store.load(OID(1)).data == [2])
        #expect(throws: DurusError.keyNotFound(dangling)) { try store.load(dangling) }
        let fresh = try store.newOIDs(count: 10)
        #expect(fresh.allSatisfy { $0.rawValue > dangling.rawValue }, "new OIDs \(fresh) start above \(dangling)")
    }

    /// A source that only lists records, as a damaged Durus file might hold them.
    final class ListedRecords: Storage, @unchecked Sendable {
        let records: [Record]
        init(_ records: [Record]) { self.records = records }
        func load(_ oid: OID) throws -> Record {
            guard let record = records.first(where: { $0.oid == oid }) else { throw DurusError.keyNotFound(oid) }
            return record
        }
        func newOID() throws -> OID { throw DurusError.readOnly }
        func commit(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws { throw DurusError.readOnly }
        func sync() throws -> [OID] { [] }
        func pack() throws { throw DurusError.readOnly }
        func forEachRecord(_ body: (Record) throws -> Void) throws { try records.forEach(body) }
        func close() throws {}
    }

    /// ``Configuration/migration`` writes the tables without a log: the
    /// open refuses every change but the migration, the migrated records
    /// are on disk when it returns, and an ordinary open afterwards reads
    /// them and commits (logged again: it survives a crash, as
    /// `CrashTests` show for ordinary opens).
    @Test func aMigrationOnlyOpenMigratesAndNothingElse() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (source, reachable, _) = try Self.graph()
        let store = try BerkeleyDBStorage(path: directory.path, configuration: .migration)
        try store.migrate(from: source)
        let record = Record(oid: reachable[1].oid, data: [9], references: [])
        for attempt in [{ try store.commit([record]) { _ in } }, { _ = try store.newOID() }, { try store.pack() }] {
            #expect { try attempt() } throws: { "\($0)".contains("migration only") }
        }
        #expect(try store.verify().isClean)
        try store.close()
        let reopened = try openStore(directory.path)
        defer { try? reopened.close() }
        for record in reachable { #expect(try reopened.load(record.oid) == record) }
        try reopened.commit([record]) { _ in }
        #expect(try reopened.load(record.oid) == record)
        #expect(try reopened.verify().isClean)
    }

    /// A source that fails halfway (as a killed run would stop) leaves the
    /// store marked; running the migration again finishes it, identical to
    /// an uninterrupted one: with the defaults (logged tables, with and
    /// without snapshot reads) and with ``Configuration/migration``.
    @Test(arguments: [(true, false), (false, false), (false, true)])
    func rerunAfterAnInterruptionFinishes(snapshotReads: Bool, migrationOnly: Bool) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let source = try openStore(directory.file("source"))
        defer { try? source.close() }
        var chain: [Record] = []
        let oids = try source.newOIDs(count: 2_000)
        for (index, oid) in oids.enumerated() {
            let next = index + 1 < oids.count ? [oids[index + 1]] : []
            chain.append(Record(oid: oid, data: Array(repeating: UInt8(index % 251), count: 100), references: next))
        }
        try source.commit(chain)

        func configure(_ configuration: inout BerkeleyDBStorage.Configuration) {
            configuration.snapshotReads = snapshotReads
            configuration.migrationOnly = migrationOnly
        }
        let interrupted = try openStore(directory.file("interrupted"), configure)
        #expect(throws: Interruption.self) { try interrupted.migrate(from: Failing(source: source, after: 1_200), batchSize: 500) }
        try interrupted.migrate(from: source, batchSize: 500)
        let clean = try openStore(directory.file("clean"), configure)
        try clean.migrate(from: source, batchSize: 500)
        for record in chain {
            #expect(try interrupted.load(record.oid) == record)
            #expect(try clean.load(record.oid) == record)
        }
        #expect(interrupted.objectCount == clean.objectCount && clean.objectCount == chain.count)
        #expect(try interrupted.verify().isClean && clean.verify().isClean)
        try interrupted.close()
        try clean.close()
    }

    /// A migration process killed with SIGKILL in each phase (copying,
    /// marking, counting; several times), then run again to the end, leaves
    /// a store identical to an uninterrupted migration's: same records under
    /// the same OIDs, same counts, verify clean, the unreachable gone.
    @Test func killedMigrationsRerunToTheSameStore() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let sourcePath = directory.file("source")
        do {
            let source = try openStore(sourcePath)
            let oids = try source.newOIDs(count: 6_000)
            var records: [Record] = []
            for (index, oid) in oids.enumerated() {
                // A chain from the root through the first 5,000; the rest hang
                // in two-object cycles nothing reaches.
                let refs: [OID] = index < 4_999 ? [oids[index + 1]] : index >= 5_000 ? [oids[index ^ 1]] : []
                records.append(Record(oid: oid, data: Array(repeating: UInt8(index % 199), count: 64), references: refs))
            }
            try source.commit(records)
            try source.close()
        }
        let killed = directory.file("killed")
        var kills = 0
        for (run, phase) in ["copying", "marking", "counting", "copying", "counting"].enumerated() {
            let (process, out, _) = try CrashChild.start(["migrate", sourcePath, killed])
            var seen = Data()
            while !String(decoding: seen, as: UTF8.self).contains(phase) {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                seen.append(chunk)
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if process.terminationReason == .uncaughtSignal { kills += 1 }
            if run == 0 {
                // Killed while copying into tables written without a log
                // (`Configuration.migration`): no other open trusts them.
                #expect(process.terminationReason == .uncaughtSignal)
                for readOnly in [false, true] {
                    #expect {
                        _ = try openStore(killed) { $0.readOnly = readOnly }
                    } throws: { error in
                        guard case DurusError.corruptStore(_, let reason) = error else { return false }
                        return reason.contains("migration") && reason.contains("run it again")
                    }
                }
            }
        }
        #expect(kills >= 3, "most runs were killed mid-migration")
        let (_, status, error) = try CrashChild.run(["migrate", sourcePath, killed])
        #expect(status == 0, "\(error)")
        let (_, cleanStatus, cleanError) = try CrashChild.run(["migrate", sourcePath, directory.file("clean")])
        #expect(cleanStatus == 0, "\(cleanError)")

        let a = try openStore(killed), b = try openStore(directory.file("clean"))
        defer { try? a.close(); try? b.close() }
        var left: [OID: Record] = [:], right: [OID: Record] = [:]
        try a.forEachRecord { left[$0.oid] = $0 }
        try b.forEachRecord { right[$0.oid] = $0 }
        #expect(left.count == 5_000 && left == right)
        #expect(a.objectCount == b.objectCount && a.byteCount == b.byteCount)
        #expect(try a.verify().isClean && b.verify().isClean)
        #expect(try a.newOID() == b.newOID())
    }

    struct Interruption: Error {}

    /// Passes records through, then stops with an error.
    final class Failing: Storage {
        let source: any Storage
        let after: Int
        init(source: any Storage, after: Int) {
            self.source = source
            self.after = after
        }
        func load(_ oid: OID) throws -> Record { try source.load(oid) }
        func newOID() throws -> OID { try source.newOID() }
        func commit(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws {}
        func sync() throws -> [OID] { [] }
        func pack() throws {}
        func close() throws {}
        func forEachRecord(_ body: (Record) throws -> Void) throws {
            var seen = 0
            try source.forEachRecord { record in
                seen += 1
                if seen > after { throw Interruption() }
                try body(record)
            }
        }
    }
}

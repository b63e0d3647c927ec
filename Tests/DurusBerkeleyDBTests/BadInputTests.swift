import Durus
import DurusBerkeleyDB
import DurusTestSupport
import Foundation
import Testing

/// Bad input of every kind gets a typed error, and what was good survives it.
@Suite struct BadInputTests {
    /// A closed store of a root and 200 children, each with a 100-byte state,
    /// checkpointed twice, so recovery has no log to rebuild damaged pages
    /// from (with the log, recovery would repair them silently).
    func makeStore(_ path: String) throws -> [OID] {
        let storage = try openStore(path)
        let root = try storage.newOID()
        let children = try storage.newOIDs(count: 200)
        try storage.commit([Record(oid: root, data: [1], references: children)]
            + children.map { Record(oid: $0, data: [UInt8](repeating: UInt8($0.rawValue % 256), count: 100), references: []) })
        try storage.checkpoint()
        try storage.checkpoint()
        try storage.close()
        return [root] + children
    }

    func isTyped(_ error: any Error) -> Bool {
        error is DurusError || error is BerkeleyDBError
    }

    func copyStore(_ from: String, _ to: String) throws {
        try FileManager.default.copyItem(atPath: from, toPath: to)
    }

    /// Opens `path`, loads every OID and verifies; returns the first error.
    func tryEverything(_ path: String, _ oids: [OID]) -> (any Error)? {
        do {
            let storage = try openStore(path)
            defer { try? storage.close() }
            for oid in oids { _ = try storage.load(oid) }
            let report = try storage.verify()
            return report.isClean ? nil : DurusError.corruptStore(path: path, reason: "\(report)")
        } catch {
            return error
        }
    }

    @Test func aFileIsNotAStore() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let file = dir.file("data.bin")
        try Data("not a store".utf8).write(to: URL(fileURLWithPath: file))
        #expect {
            try openStore(file)
        } throws: { error in
            guard case DurusError.notAStore(_, let why) = error else { return false }
            return why.contains("file")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == Data("not a store".utf8), "the file is untouched")
    }

    @Test func aDirectoryOfSomethingElseIsRefusedAndUntouched() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        try Data("hello".utf8).write(to: URL(fileURLWithPath: dir.file("notes.txt")))
        #expect {
            try openStore(dir.path)
        } throws: { error in
            guard case DurusError.notAStore(_, let why) = error else { return false }
            return why.contains("notes.txt")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["notes.txt"], "nothing was created")
    }

    @Test func aMissingStoreIsNotCreatedWhenToldNotTo() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let missing = dir.file("missing")
        #expect(throws: DurusError.notAStore(path: missing, reason: "no such directory")) {
            try openStore(missing) { $0.createIfMissing = false }
        }
        #expect(!FileManager.default.fileExists(atPath: missing))
    }

    @Test func aMissingTableIsAnErrorNamingIt() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        _ = try makeStore(dir.path)
        try FileManager.default.removeItem(atPath: dir.file("refcounts.db"))
        #expect {
            try openStore(dir.path)
        } throws: { error in
            guard case DurusError.corruptStore(_, let why) = error else { return false }
            return why.contains("refcounts.db")
        }
    }

    @Test(arguments: ["truncate", "truncate-page", "scribble", "empty"])
    func aDamagedRecordsFileIsATypedError(damage: String) throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let good = dir.file("good")
        let bad = dir.file("bad")
        let oids = try makeStore(good)
        try copyStore(good, bad)
        let file = bad + "/records.db"
        // A copy in memory: Foundation may map the file, and rewriting a mapped file faults.
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
        switch damage {
        case "truncate": bytes = Array(bytes.prefix(bytes.count / 2))
        case "truncate-page": bytes = Array(bytes.prefix((bytes.count / 2) & ~4095))
        case "scribble":
            for i in stride(from: bytes.count / 3, to: bytes.count / 3 + 3000, by: 7) { bytes[i] ^= 0x5A }
        default: bytes = []
        }
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let error = tryEverything(bad, oids)
        #expect(error != nil, "damage '\(damage)' went unnoticed")
        if let error { #expect(isTyped(error), "damage '\(damage)' gave \(type(of: error)): \(error)") }
        print("damage \(damage): \(error.map { "\($0)" } ?? "none")")
        #expect(tryEverything(good, oids) == nil, "the undamaged copy opens, loads and verifies")
    }

    @Test func aNewerFormatIsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        _ = try makeStore(dir.path)
        try RawBerkeleyDB.overwriteFormat(in: dir.path, with: 99)
        #expect(throws: DurusError.unsupportedFormat(path: dir.path, found: 99, supported: BerkeleyDBStorage.formatVersion)) {
            try openStore(dir.path)
        }
    }

    @Test func badCommitsLeaveAStoreThatReopensAndVerifies() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let oids = try makeStore(dir.path)
        do {
            let storage = try openStore(dir.path)
            let record = Record(oid: oids[1], data: [9], references: [])
            #expect(throws: DurusError.oidMismatch(key: oids[2], embedded: oids[1])) {
                try storage.commit([try Record(key: oids[2], bytes: record.bytes)])
            }
            #expect(throws: DurusError.malformedRecord("3 bytes is shorter than the 12-byte record header")) {
                try storage.commit([try Record(bytes: [1, 2, 3])])
            }
            let fresh = try storage.newOID()
            #expect(throws: ConflictError(.write, oids: [OID(fresh.rawValue + 500)])) {
                try storage.commit([Record(oid: oids[0], data: [2], references: [fresh, OID(fresh.rawValue + 500)]),
                                    Record(oid: fresh, data: [], references: [])])
            }
            #expect(throws: DurusError.oidNotAllocated(OID(fresh.rawValue + 5000))) {
                try storage.commit([Record(oid: OID(fresh.rawValue + 5000), data: [], references: [])])
            }
            try storage.close()
        }
        #expect(tryEverything(dir.path, oids) == nil)
        let storage = try openStore(dir.path)
        defer { try? storage.close() }
        #expect(try storage.load(oids[0]).references == Array(oids.dropFirst()), "nothing of the refused commits was written")
        #expect(storage.objectCount == oids.count)
    }
}

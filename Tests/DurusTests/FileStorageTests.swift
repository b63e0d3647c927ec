@testable import Durus
import DurusTestSupport
import Foundation
import Synchronization
import Testing

/// Python Durus 4.3 and the scripts in Python/ beside this file.
private let durusPython = PythonScripts(
    folder: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Python").path)

/// What make_files.py reports about a file Durus built.
private struct MadeFile: Decodable {
    var records: [String: String]
    var reachable: [UInt64]
    var tail_transactions: Int?
    var tail_records: Int?
    var map_entries: Int?

    /// OID → record bytes.
    var recordBytes: [OID: [UInt8]] {
        Dictionary(uniqueKeysWithValues: records.map { (OID(UInt64($0.key)!), hexBytes($0.value)) })
    }
}

/// What read_file.py reports: Durus's iteration and loads of a file.
private struct ReadBack: Decodable {
    var records: [String: String]
    var loaded: [String: String]
    var items: Int?
    var new_oid: UInt64?

    var recordBytes: [OID: [UInt8]] {
        Dictionary(uniqueKeysWithValues: records.map { (OID(UInt64($0.key)!), hexBytes($0.value)) })
    }
}

/// Where the fixtures of this test run live; removed when the process exits
/// (static fixtures have no end of their own: each run left two directories).
private let fixtureDirectory: URL = {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("FileStorageFixtures-\(UUID())")
    atexit { try? FileManager.default.removeItem(at: fixtureDirectory) }
    return directory
}()

/// A file Durus built once per test run, copied for each test that uses it.
private final class Fixture: Sendable {
    let path: String
    let made: MadeFile

    init(kind: String) throws {
        try FileManager.default.createDirectory(at: fixtureDirectory, withIntermediateDirectories: true)
        path = fixtureDirectory.appendingPathComponent("\(kind).durus").path
        made = try JSONDecoder().decode(MadeFile.self, from: durusPython.run("make_files.py", [kind, path]))
    }

    /// A private copy of the file at a fresh path.
    func copy(into directory: String) throws -> String {
        let copy = directory + "/copy.durus"
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        return copy
    }

    static let shelf = Result { try Fixture(kind: "shelf") }
    static let dfs20 = Result { try Fixture(kind: "dfs20") }
}

/// A fresh directory, removed after `body`.
private func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("FileStorageTests-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    return try body(directory.path)
}

private func fileSize(_ path: String) throws -> Int {
    try (FileManager.default.attributesOfItem(atPath: path)[.size] as! NSNumber).intValue
}

private func overwrite(_ path: String, at offset: Int, with bytes: [UInt8]) throws {
    let handle = try #require(FileHandle(forUpdatingAtPath: path))
    try handle.seek(toOffset: UInt64(offset))
    try handle.write(contentsOf: Data(bytes))
    try handle.close()
}

private func truncate(_ path: String, to size: Int) throws {
    let handle = try #require(FileHandle(forUpdatingAtPath: path))
    try handle.truncate(atOffset: UInt64(size))
    try handle.close()
}

/// The offset `corruptFile` names, or nil for any other error.
private func corruptOffset(_ body: () throws -> Void) -> Int? {
    do {
        try body()
    } catch DurusError.corruptFile(_, let offset, _) {
        return offset
    } catch {
        Issue.record("expected corruptFile, got \(error)")
        return nil
    }
    Issue.record("expected corruptFile, nothing was thrown")
    return nil
}

private func record(_ oid: OID, _ text: String, _ references: [OID] = []) -> Record {
    Record(oid: oid, data: Array(text.utf8), references: references)
}

/// A Swift-made file of three transactions: the root and 1-3, then 4-5, then
/// 6-7 plus a new root. Returns the offset each transaction starts at.
private func makeThreeTransactions(at path: String) throws -> [Int] {
    let storage = try FileStorage(path: path)
    let oids = try storage.newOIDs(count: 8)
    var starts: [Int] = []
    starts.append(try fileSize(path))
    try storage.commit([record(0, "root", [1, 2, 3])] + (1 ... 3).map { record(oids[$0], "first \($0)") })
    starts.append(try fileSize(path))
    try storage.commit([record(4, "second 4", [1]), record(5, "second 5")])
    starts.append(try fileSize(path))
    try storage.commit([record(0, "root again", [1, 2, 3, 4, 5, 6, 7]), record(6, "third 6"), record(7, "third 7")])
    try storage.close()
    return starts
}

@Suite struct FileStorageTests {
    @Test func readsEveryRecordOfAShelfFileWrittenByDurus() throws {
        let fixture = try Fixture.shelf.get()
        try withTemporaryDirectory { directory in
            let storage = try FileStorage(path: try fixture.copy(into: directory), options: .init(readOnly: true))
            let expected = fixture.made.recordBytes
            #expect(storage.format == .shelf1)
            #expect(storage.count == expected.count)
            for (oid, bytes) in expected {
                #expect(try storage.load(oid).bytes == bytes, "record of \(oid)")
            }
            var streamed: [OID: [UInt8]] = [:]
            try storage.forEachRecord { streamed[$0.oid] = $0.bytes }
            #expect(streamed == expected)
            #expect(throws: DurusError.readOnly) { try storage.newOID() }
        }
    }

    /// The Durus file holds 2,809 records; opening it reads the offset map and
    /// only the 4 transactions committed after Durus's pack wrote that map.
    @Test func startupReadsTheOffsetMapAndOnlyTheTransactionsAfterIt() throws {
        let fixture = try Fixture.shelf.get()
        try withTemporaryDirectory { directory in
            let storage = try FileStorage(path: try fixture.copy(into: directory))
            let statistics = storage.openStatistics
            #expect(statistics.transactionsScanned == fixture.made.tail_transactions)
            #expect(statistics.recordsScanned == fixture.made.tail_records)
            #expect(statistics.offsetMapEntries == fixture.made.map_entries)
            #expect(statistics.transactionsScanned == 4)
            #expect(statistics.recordsScanned < storage.count / 5)
            try storage.close()
        }
    }

    @Test func readsADFS20FileWrittenByDurus3Format() throws {
        let fixture = try Fixture.dfs20.get()
        try withTemporaryDirectory { directory in
            let storage = try FileStorage(path: try fixture.copy(into: directory))
            let expected = fixture.made.recordBytes
            #expect(storage.format == .dfs20)
            #expect(storage.isReadOnly)
            #expect(storage.count == expected.count)
            for (oid, bytes) in expected {
                #expect(try storage.load(oid).bytes == bytes, "record of \(oid)")
            }
            #expect(throws: DurusError.readOnly) { try storage.newOID() }
            #expect(throws: DurusError.readOnly) { try storage.commit([record(0, "x")]) }
            #expect(throws: DurusError.readOnly) { try storage.pack() }
        }
    }

    /// Cutting the DFS20 file's last transaction short is reported at its start.
    @Test func aTornDFS20FileNamesItsLastTransaction() throws {
        let fixture = try Fixture.dfs20.get()
        try withTemporaryDirectory { directory in
            let path = try fixture.copy(into: directory)
            let size = try fileSize(path)
            try truncate(path, to: size - 10)
            do {
                _ = try FileStorage(path: path)
                Issue.record("a torn DFS20 file opened")
            } catch DurusError.tornTransaction(_, let offset) {
                #expect(offset > 14 && offset < size - 10)
            }
        }
    }

    /// Swift creates a file and commits three transactions (one replacing
    /// records); Durus's FileStorage iterates and loads exactly those bytes.
    @Test func durusReadsBackWhatSwiftCommitted() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/new.durus"
            _ = try makeThreeTransactions(at: path)
            let storage = try FileStorage(path: path, options: .init(readOnly: true))
            var expected: [OID: [UInt8]] = [:]
            try storage.forEachRecord { expected[$0.oid] = $0.bytes }
            try storage.close()
            #expect(expected.count == 8)
            #expect(expected[0] == record(0, "root again", [1, 2, 3, 4, 5, 6, 7]).bytes)
            let read = try JSONDecoder().decode(ReadBack.self, from: durusPython.run("read_file.py", [path]))
            #expect(read.recordBytes == expected)
            #expect(read.loaded == read.records)
        }
    }

    /// Swift appends to a file Durus built; Durus then sees the new records,
    /// still walks its BTree of 2,200 items, and commits on top.
    @Test func swiftAppendsToADurusFileAndDurusKeepsUsingIt() throws {
        let fixture = try Fixture.shelf.get()
        try withTemporaryDirectory { directory in
            let path = try fixture.copy(into: directory)
            let storage = try FileStorage(path: path)
            let first = try storage.newOID(), second = try storage.newOID()
            #expect(first.rawValue > fixture.made.records.keys.map { UInt64($0)! }.max()!)
            #expect(second.rawValue == first.rawValue + 1)
            try storage.commit([record(first, "from swift", [second, 1]), record(second, "leaf")])
            try storage.close()
            let read = try JSONDecoder().decode(ReadBack.self, from: durusPython.run("read_file.py", [path, "--objects"]))
            #expect(read.items == 2200)
            #expect(read.recordBytes[first] == record(first, "from swift", [second, 1]).bytes)
            #expect(read.recordBytes[second] == record(second, "leaf").bytes)
            #expect(read.records.count == fixture.made.records.count + 2)
            let reopened = try FileStorage(path: path)
            #expect(reopened.count == fixture.made.records.count + 3, "Durus's commit added one record")
            #expect(try reopened.newOID().rawValue > second.rawValue)
        }
    }

    /// Packing Durus's file keeps the 2,788 reachable records byte for byte,
    /// drops the 21 garbage ones, reports them through sync(), never hands
    /// their OIDs out again, and leaves a file Durus opens, walks and writes.
    @Test func packKeepsReachableRecordsAndDurusOpensThePackedFile() throws {
        let fixture = try Fixture.shelf.get()
        try withTemporaryDirectory { directory in
            let path = try fixture.copy(into: directory)
            let all = fixture.made.recordBytes
            let reachable = Set(fixture.made.reachable.map { OID($0) })
            let garbage = Set(all.keys).subtracting(reachable)
            #expect(garbage.count == 21)
            let storage = try FileStorage(path: path)
            let beforePack = try storage.newOID()
            try storage.pack()
            #expect(storage.count == reachable.count)
            for oid in reachable { #expect(try storage.load(oid).bytes == all[oid]) }
            for oid in garbage { #expect(throws: DurusError.keyNotFound(oid)) { try storage.load(oid) } }
            #expect(Set(try storage.sync()) == garbage)
            #expect(try storage.sync().isEmpty)
            #expect(!FileManager.default.fileExists(atPath: path + ".pack"))
            try storage.close()

            let reopened = try FileStorage(path: path)
            #expect(reopened.openStatistics.transactionsScanned == 0)
            #expect(reopened.openStatistics.offsetMapEntries == reachable.count)
            #expect(try reopened.newOID().rawValue > beforePack.rawValue)
            try reopened.close()

            let read = try JSONDecoder().decode(ReadBack.self, from: durusPython.run("read_file.py", [path, "--objects"]))
            #expect(read.items == 2200)
            // Durus hands out a hole of the map Swift wrote: a collected OID or a fresh one.
            let durusOID = try #require(read.new_oid)
            #expect(garbage.contains(OID(durusOID)) || durusOID > beforePack.rawValue)
            #expect(read.recordBytes == all.filter { reachable.contains($0.key) })
            #expect(try FileStorage(path: path).count == reachable.count + 1, "Durus's commit after the pack")
        }
    }

    /// The last transaction is cut in half. Opening names its offset and
    /// changes nothing; with repair the file is truncated there and every
    /// record of the two earlier transactions survives.
    @Test func aTornLastTransactionIsReportedOrRepaired() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/torn.durus"
            let starts = try makeThreeTransactions(at: path)
            let size = try fileSize(path)
            try truncate(path, to: (starts[2] + size) / 2)
            #expect(throws: DurusError.tornTransaction(path: path, offset: starts[2])) { try FileStorage(path: path) }
            #expect(try fileSize(path) == (starts[2] + size) / 2)

            let repaired = try FileStorage(path: path, options: .init(repair: true))
            #expect(repaired.openStatistics.truncatedAt == starts[2])
            #expect(try fileSize(path) == starts[2])
            #expect(try repaired.load(0) == record(0, "root", [1, 2, 3]))
            #expect(try repaired.load(5) == record(5, "second 5"))
            #expect(repaired.count == 6)
            #expect(throws: DurusError.keyNotFound(6)) { try repaired.load(6) }
            // OIDs of the lost transaction were never stored, so they may come again.
            #expect(try repaired.newOID() == 6)
            try repaired.commit([record(6, "after repair")])
            try repaired.close()
            let read = try JSONDecoder().decode(ReadBack.self, from: durusPython.run("read_file.py", [path]))
            #expect(read.records.count == 7)
        }
    }

    /// Durus writes a zero length, the items, then the real length. A crash
    /// before that last write leaves a zero-length transaction followed by
    /// items: whole ones, or the last cut short. Both are a torn transaction
    /// at the placeholder; repair drops it and keeps the three before it.
    @Test func aCommitDurusNeverFinishedIsATornTransaction() throws {
        try withTemporaryDirectory { directory in
            for cutShort in [false, true] {
                let path = directory + "/unfinished-\(cutShort).durus"
                _ = try makeThreeTransactions(at: path)
                let start = try fileSize(path)
                var unfinished = ShelfFormat.u64(0) + ShelfFormat.item(record(8, "whole"))
                let last = ShelfFormat.item(record(9, "cut short", [8]))
                unfinished += cutShort ? Array(last.prefix(last.count / 2)) : last
                try overwrite(path, at: start, with: unfinished)
                #expect(throws: DurusError.tornTransaction(path: path, offset: start)) { try FileStorage(path: path) }
                let repaired = try FileStorage(path: path, options: .init(repair: true))
                #expect(repaired.openStatistics.truncatedAt == start)
                #expect(repaired.count == 8)
                #expect(try fileSize(path) == start)
            }
        }
    }

    /// A real empty transaction (Durus writes them) followed by more is no tear.
    @Test func anEmptyTransactionBeforeOthersIsKept() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/empty-transaction.durus"
            _ = try makeThreeTransactions(at: path)
            let start = try fileSize(path)
            try overwrite(path, at: start, with: ShelfFormat.transaction([]) + ShelfFormat.transaction([record(2, "later")]))
            let storage = try FileStorage(path: path)
            #expect(storage.openStatistics.transactionsScanned == 5)
            #expect(try storage.load(2) == record(2, "later"))
        }
    }

    /// Garbage over the first record header of the middle transaction is
    /// named at that offset, repair or not, and the file is left alone.
    @Test func garbageInsideAnEarlierTransactionNamesItsOffset() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/garbage.durus"
            let starts = try makeThreeTransactions(at: path)
            let size = try fileSize(path)
            try overwrite(path, at: starts[1] + 8, with: [UInt8](repeating: 0xAB, count: 16))
            #expect(corruptOffset { _ = try FileStorage(path: path) } == starts[1] + 8)
            #expect(corruptOffset { _ = try FileStorage(path: path, options: .init(repair: true)) } == starts[1] + 8)
            #expect(try fileSize(path) == size)

            // A transaction length made huge: the scan walks into the next
            // transaction's header, which is no record, and stops there.
            let other = directory + "/length.durus"
            let otherStarts = try makeThreeTransactions(at: other)
            try overwrite(other, at: otherStarts[1], with: [UInt8](repeating: 0x7F, count: 8))
            #expect(corruptOffset { _ = try FileStorage(path: other, options: .init(repair: true)) } == otherStarts[2])
        }
    }

    /// Garbage over the offset map of Durus's file is named at the map's offset.
    @Test func garbageWhereTheOffsetMapShouldBeNamesItsOffset() throws {
        let fixture = try Fixture.shelf.get()
        try withTemporaryDirectory { directory in
            let path = try fixture.copy(into: directory)
            let header = try #require(FileHandle(forReadingAtPath: path)).readData(ofLength: 16)
            let mapStart = 16 + Int(header.suffix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            try overwrite(path, at: mapStart, with: Array("this is not an offset map".utf8))
            #expect(corruptOffset { _ = try FileStorage(path: path) } == mapStart)
        }
    }

    @Test func aFileOfAnotherKindOrAnEmptyFileIsRejectedAtOffsetZero() throws {
        try withTemporaryDirectory { directory in
            let other = directory + "/other.txt"
            try Data("hello, this is not a Durus file\n".utf8).write(to: URL(fileURLWithPath: other))
            #expect(corruptOffset { _ = try FileStorage(path: other) } == 0)
            let empty = directory + "/empty.durus"
            #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
            #expect(corruptOffset { _ = try FileStorage(path: empty) } == 0)
            #expect(try fileSize(empty) == 0)
            #expect(throws: DurusError.self) { try FileStorage(path: directory + "/missing", options: .init(create: false)) }
            #expect(!FileManager.default.fileExists(atPath: directory + "/missing"))
        }
    }

    @Test func aSecondWriterIsRefusedButReadersAreNot() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/locked.durus"
            let writer = try FileStorage(path: path)
            #expect(throws: DurusError.storeInUse(path: path)) { try FileStorage(path: path) }
            let reader = try FileStorage(path: path, options: .init(readOnly: true))
            #expect(reader.count == 0)
            try writer.close()
            try FileStorage(path: path).close()
        }
    }

    @Test func commitRulesAndClose() throws {
        try withTemporaryDirectory { directory in
            let storage = try FileStorage(path: directory + "/rules.durus", options: .init(syncOnCommit: true))
            #expect(try storage.newOID() == .root)
            #expect(throws: DurusError.oidNotAllocated(5)) { try storage.commit([record(5, "x")]) }
            #expect(throws: ConflictError(.write, oids: [1])) { try storage.commit([record(0, "x", [1])]) }
            try storage.commit([record(0, "root")])
            try storage.close()
            #expect(throws: DurusError.closed) { try storage.load(0) }
            #expect(throws: DurusError.closed) { try storage.commit([record(0, "x")]) }
            #expect(throws: DurusError.closed) { try storage.newOID() }
            #expect(throws: DurusError.closed) { try storage.sync() }
            #expect(throws: DurusError.closed) { try storage.pack() }
        }
    }

    /// Eight threads commit and load at once while a ninth packs: each
    /// worker links its records from its own head object, so none is garbage.
    @Test func concurrentCommitsLoadsAndPacks() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/busy.durus"
            let storage = try FileStorage(path: path)
            let heads = Array(try storage.newOIDs(count: 9).dropFirst())
            try storage.commit([record(0, "root", heads)] + heads.map { record($0, "head") })
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 9) { worker in
                do {
                    var mine: [OID] = []
                    for step in 0 ..< 50 {
                        guard worker < 8 else {
                            try storage.pack()
                            continue
                        }
                        let oid = try storage.newOID()
                        let new = record(oid, "worker \(worker) step \(step)")
                        mine.append(oid)
                        let head = heads[worker]
                        try storage.commit([new, record(head, "head", mine)])
                        guard try storage.load(oid) == new else { throw PythonFailure("lost \(oid)") }
                    }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.withLock { $0 } == [])
            #expect(storage.count == 1 + 8 + 8 * 50)
            try storage.close()
            #expect(try FileStorage(path: path).count == 1 + 8 + 8 * 50)
        }
    }
}

/// Every record a scan yields, in order.
private func scanned(_ path: String) throws -> [Record] {
    var records: [Record] = []
    try FileScan(path: path).forEachRecord { records.append($0) }
    return records
}

/// OID → bytes, the last record of each OID winning.
private func lastWins(_ records: [Record]) -> [OID: [UInt8]] {
    Dictionary(records.map { ($0.oid, $0.bytes) }, uniquingKeysWith: { _, later in later })
}

@Suite struct FileScanTests {
    /// Durus's file has records before its offset map and newer ones after:
    /// the scan yields all of them, and letting the last one win gives
    /// exactly what FileStorage loads.
    @Test func aScanOfAShelfFileEndsWithTheRecordsFileStorageLoads() throws {
        let fixture = try Fixture.shelf.get()
        try withTemporaryDirectory { directory in
            let path = try fixture.copy(into: directory)
            let records = try scanned(path)
            let storage = try FileStorage(path: path, options: .init(readOnly: true))
            var loaded: [OID: [UInt8]] = [:]
            try storage.forEachRecord { loaded[$0.oid] = $0.bytes }
            #expect(lastWins(records) == loaded)
            #expect(loaded == fixture.made.recordBytes)
            let mapEntries = try #require(fixture.made.map_entries), tailRecords = try #require(fixture.made.tail_records)
            #expect(records.count == mapEntries + tailRecords)
            #expect(try FileScan(path: path).estimatedRecordCount == fixture.made.map_entries)
        }
    }

    @Test func aScanOfADFS20FileEndsWithTheRecordsFileStorageLoads() throws {
        let fixture = try Fixture.dfs20.get()
        try withTemporaryDirectory { directory in
            let path = try fixture.copy(into: directory)
            let scan = try FileScan(path: path)
            #expect(scan.format == .dfs20)
            #expect(scan.estimatedRecordCount == nil)
            let records = try scanned(path)
            #expect(lastWins(records) == fixture.made.recordBytes)
            #expect(records.count > fixture.made.recordBytes.count)
        }
    }

    /// The scan yields the two whole transactions, none of the torn one's
    /// records, then names the torn transaction's offset; DFS20 the same.
    @Test func aTornTailIsATornTransactionAfterTheWholeOnes() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/torn.durus"
            let starts = try makeThreeTransactions(at: path)
            try truncate(path, to: try fileSize(path) - 3)
            var records: [Record] = []
            #expect(throws: DurusError.tornTransaction(path: path, offset: starts[2])) {
                try FileScan(path: path).forEachRecord { records.append($0) }
            }
            #expect(records.map(\.oid) == [0, 1, 2, 3, 4, 5])

            let dfs20 = try Fixture.dfs20.get().copy(into: directory)
            let whole = try scanned(dfs20)
            try truncate(dfs20, to: try fileSize(dfs20) - 10)
            var opening: DurusError?
            do { _ = try FileStorage(path: dfs20) } catch { opening = error as? DurusError }
            guard case .tornTransaction = try #require(opening) else { throw PythonFailure("not torn: \(opening!)") }
            records = []
            #expect(throws: opening!) { try FileScan(path: dfs20).forEachRecord { records.append($0) } }
            // Durus's last commit stored the root and a new list.
            #expect(records.count == whole.count - 2)
        }
    }

    /// Garbage inside a transaction is named at its offset, as FileStorage names it.
    @Test func garbageIsACorruptFileAtItsOffset() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/garbage.durus"
            let starts = try makeThreeTransactions(at: path)
            try overwrite(path, at: starts[1] + 8, with: [UInt8](repeating: 0xAB, count: 16))
            #expect(corruptOffset { _ = try scanned(path) } == starts[1] + 8)
        }
    }

    /// A scan is a migration's source and not a storage: it can neither load
    /// one record nor store any.
    @Test func aScanIsOnlyAMigrationSource() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/small.durus"
            _ = try makeThreeTransactions(at: path)
            let scan = try FileScan(path: path)
            let source: any MigrationSource = scan
            #expect(!(source is any Storage))
            #expect(source.estimatedRecordCount == scan.estimatedRecordCount)
            try scan.close()
            #expect(throws: DurusError.closed) { try scan.forEachRecord { _ in } }
        }
    }
}

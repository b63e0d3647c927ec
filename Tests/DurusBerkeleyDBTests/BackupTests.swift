import Durus
import DurusBerkeleyDB
import Foundation
import Synchronization
import Testing

@Suite struct BackupTests {
    /// A backup taken while another thread commits without pause opens as a
    /// store of its own, verifies clean, and holds a prefix of the commit
    /// stream that includes every commit acknowledged before it began.
    @Test func hotBackupDuringACommitStream() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStore(directory.file("live")) { $0.durability = .writeNoSync }
        defer { try? storage.close() }
        _ = try storage.newOID()
        try storage.commit([Record(oid: .root, data: Self.count(0), references: [])])
        let acknowledged = Mutex<UInt64>(0)
        let stop = Mutex(false)
        let writer = Thread {
            var children: [OID] = []
            var n: UInt64 = 0
            while !stop.withLock({ $0 }) {
                n += 1
                guard let child = try? storage.newOID() else { return }
                children.append(child)
                let batch = [Record(oid: child, data: Self.count(n), references: []),
                             Record(oid: .root, data: Self.count(n), references: children)]
                guard (try? storage.commit(batch)) != nil else { return }
                acknowledged.withLock { $0 = n }
            }
        }
        writer.start()
        while acknowledged.withLock({ $0 }) < 200 { usleep(1_000) }
        var checks: [(String, UInt64)] = []
        for index in 0 ..< 3 {
            let before = acknowledged.withLock { $0 }
            let path = directory.file("backup-\(index)")
            try storage.backup(to: path)
            checks.append((path, before))
        }
        stop.withLock { $0 = true }
        while !writer.isFinished { usleep(1_000) }
        #expect(throws: DurusError.self) { try storage.backup(to: checks[0].0) }   // not empty

        for (path, before) in checks {
            let copy = try openStore(path)
            let report = try copy.verify()
            #expect(report.isClean, "\(report)")
            let root = try copy.load(.root)
            let n = Self.value(root.data)
            #expect(n >= before, "the backup lost commit \(before); it holds \(n)")
            #expect(root.references.count == Int(n))
            for (index, child) in root.references.enumerated() {
                #expect(Self.value(try copy.load(child).data) == UInt64(index + 1))
            }
            // The copy is a store of its own: it takes commits.
            let extra = try copy.newOID()
            try copy.commit([Record(oid: extra, data: [1], references: []), Record(oid: .root, data: root.data, references: root.references + [extra])])
            try copy.close()
        }
    }

    static func count(_ n: UInt64) -> [UInt8] { withUnsafeBytes(of: n.bigEndian) { Array($0) } }
    static func value(_ data: ArraySlice<UInt8>) -> UInt64 { data.reduce(0) { $0 << 8 | UInt64($1) } }
}

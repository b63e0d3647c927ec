import Durus
import DurusBerkeleyDB
import DurusTestSupport
import Foundation
import Synchronization
import Testing

/// Loads share a snapshot transaction while nothing commits; none of them
/// may see the store as it was before a commit that returned first.
@Suite struct SnapshotReuseTests {
    /// Loads in a row, a commit, loads again: the new data every time, and
    /// a record collected as garbage is gone for the next load.
    @Test func aLoadAfterACommitSeesIt() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try openStore(dir.path) { $0.collectsInBackground = false }
        defer { try? storage.close() }
        let root = try storage.newOID(), item = try storage.newOID()
        try storage.commit([Record(oid: root, data: [0], references: [item]), Record(oid: item, data: [1], references: [])])
        for version in UInt8(2) ... 40 {
            for _ in 0 ..< 3 { #expect(Array(try storage.load(item).data) == [version - 1]) }
            try storage.commit([Record(oid: item, data: [version], references: [])])
            #expect(Array(try storage.load(item).data) == [version])
        }
        try storage.commit([Record(oid: root, data: [0], references: [])])  // item becomes garbage
        #expect(throws: DurusError.keyNotFound(item)) { try storage.load(item) }
    }

    /// Four threads load a counter while a fifth commits it up: every load
    /// that starts after a commit returned reads at least that commit's value.
    @Test func concurrentLoadsNeverReadBehindAReturnedCommit() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try openStore(dir.path) { $0.durability = .writeNoSync }
        defer { try? storage.close() }
        let root = try storage.newOID(), counter = try storage.newOID()
        func value(_ n: UInt32) -> [UInt8] { withUnsafeBytes(of: n.bigEndian) { Array($0) } }
        try storage.commit([Record(oid: root, data: [], references: [counter]), Record(oid: counter, data: value(0), references: [])])
        let returned = Atomic<UInt32>(0)
        let behind = Atomic<Int>(0), loads = Atomic<Int>(0)
        let writes: UInt32 = 500
        let group = DispatchGroup()
        for _ in 0 ..< 4 {
            group.enter()
            Thread {
                defer { group.leave() }
                while returned.load(ordering: .acquiring) < writes {
                    let floor = returned.load(ordering: .acquiring)
                    guard let data = try? storage.load(counter).data else { continue }
                    let seen = data.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                    if seen < floor { behind.add(1, ordering: .relaxed) }
                    loads.add(1, ordering: .relaxed)
                }
            }.start()
        }
        for n in 1 ... writes {
            try storage.commit([Record(oid: counter, data: value(n), references: [])])
            returned.store(n, ordering: .releasing)
        }
        group.wait()
        #expect(behind.load(ordering: .relaxed) == 0)
        #expect(loads.load(ordering: .relaxed) > 0)
        #expect(Array(try storage.load(counter).data) == value(writes))
    }
}

@testable import DurusBerkeleyDB
import Durus
import DurusTestSupport
import Foundation
import Testing

/// The windows that put a migration's puts back in OID order (RecordWindow.swift).
@Suite struct RecordWindowTests {
    /// OIDs as a packed Durus file holds them: ascending runs interleaved a
    /// few hundred apart, one far-ahead OID (a BTree node made late) first.
    static func interleaved(_ count: Int) -> [UInt64] {
        var oids: [UInt64] = [0, UInt64(count) + 10]
        var pending: [UInt64] = []
        for oid in 1 ..< UInt64(count) {
            if oid % 3 == 0 { pending.append(oid) } else { oids.append(oid) }
            if pending.count == 300 {
                oids += pending
                pending.removeAll()
            }
        }
        return oids + pending
    }

    /// Records leave a window in OID order whenever the disorder fits in it;
    /// two versions of one OID leave in the order they came; nothing is lost
    /// or made up; the byte bound lets records out early.
    @Test func recordsLeaveInOrder() throws {
        let oids = Self.interleaved(5_000)
        var window = RecordWindow(capacity: 1_000)
        var out: [Record] = []
        for (index, oid) in oids.enumerated() {
            try window.offer(Record(oid: OID(oid), data: [UInt8(index % 256)], references: []), { out.append($0) })
        }
        // A later version of OID 7, and of the far-ahead OID.
        try window.offer(Record(oid: OID(7), data: [1, 2, 3], references: []), { out.append($0) })
        try window.offer(Record(oid: OID(5_010), data: [4, 5], references: []), { out.append($0) })
        try window.drain { out.append($0) }
        #expect(out.count == oids.count + 2)
        // In OID order, but for the version of 7 that came after 7 had left.
        let descents = zip(out, out.dropFirst()).filter { $0.oid > $1.oid }.map(\.1.oid)
        #expect(descents == [OID(7)])
        #expect(Set(out.map(\.oid.rawValue)) == Set(oids))
        let sevens = out.filter { $0.oid == OID(7) }
        #expect(sevens.count == 2 && sevens.last?.data == [1, 2, 3], "the later version leaves last")
        #expect(out.last { $0.oid == OID(5_010) }?.data == [4, 5])

        // Bounded by bytes: three 4 KB records in a 10 KB window leave one out at once.
        var small = RecordWindow(capacity: 100, byteCapacity: 10_000)
        var left: [OID] = []
        for oid in [3, 1, 2] as [UInt64] {
            try small.offer(Record(oid: OID(oid), data: Array(repeating: 0, count: 4_000), references: []), { left.append($0.oid) })
        }
        #expect(left == [OID(1)])
    }

    /// Against a model: every count right, `true` exactly for an OID's first
    /// count, and the counts the window lets out reach the table in
    /// ascending OID order, never for an OID the table already counts.
    @Test func countsAddUpAndLeaveInOrder() throws {
        var generator = SystemRandomNumberGenerator()
        var stream: [UInt64] = []
        for oid in Self.interleaved(20_000) {
            stream.append(oid)
            // Some OIDs are counted again, soon or much later.
            if Int.random(in: 0 ..< 4, using: &generator) == 0 { stream.append(oid) }
            if Int.random(in: 0 ..< 50, using: &generator) == 0 { stream.append(UInt64.random(in: 0 ..< 20_000, using: &generator)) }
        }
        var window = CountWindow(capacity: 500)
        var table: [UInt64: UInt64] = [:]
        var letOut: [UInt64] = []
        var model: [UInt64: UInt64] = [:]
        for oid in stream {
            let first = try window.countUp(oid, counted: { oid in
                defer { table[oid, default: 0] += 1 }
                return table[oid] == nil
            }, out: { oid, count in
                #expect(table[oid] == nil, "\(oid) let out while the table counts it")
                table[oid] = count
                letOut.append(oid)
            })
            #expect(first == (model[oid] == nil), "first count of \(oid)")
            model[oid, default: 0] += 1
        }
        while !window.isEmpty {
            try window.drain(limit: 100) { oid, count in
                #expect(table[oid] == nil)
                table[oid] = count
                letOut.append(oid)
            }
        }
        #expect(table.count == model.count && table.allSatisfy { model[$0.key] == $0.value }, "every count as the model's")
        #expect(zip(letOut, letOut.dropFirst()).allSatisfy { $0 < $1 }, "let out in ascending OID order")
        #expect(letOut.count > table.count * 9 / 10, "nearly every first count went through the window")
    }

    /// End to end: records in a packed file's order (interleaved runs, a
    /// far-ahead OID, later versions of some) migrate to the latest version
    /// of each, with clean counts, into tables whose pages are nearly full:
    /// put in file order, the same records take about 1.6 times the space.
    @Test func aMigrationInFileOrderFillsItsPages() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let count = 20_000
        let oids = Self.interleaved(count)
        func data(_ oid: UInt64, _ version: UInt8) -> [UInt8] { Array(repeating: version, count: 80 + Int(oid % 40)) }
        var records: [Record] = []
        for oid in oids {
            // The root refers to 1 and to the far-ahead OID; each OID to the next; the far one to nothing.
            let refs: [OID] = oid == 0 ? [OID(1), OID(UInt64(count) + 10)] : oid + 1 < UInt64(count) ? [OID(oid + 1)] : []
            records.append(Record(oid: OID(oid), data: data(oid, 1), references: refs))
        }
        let later = stride(from: 5, to: count, by: 97).map { oid in
            Record(oid: OID(UInt64(oid)), data: data(UInt64(oid), 2), references: [OID(UInt64(oid) + 1)])
        }
        let store = try BerkeleyDBStorage(path: directory.path, configuration: .migration)
        try store.migrate(from: MigrateTests.ListedRecords(records + later))
        let latest = Dictionary((records + later).map { ($0.oid, $0) }, uniquingKeysWith: { $1 })
        #expect(store.objectCount == latest.count)
        try store.close()
        let reopened = try openStore(directory.path)
        for record in latest.values { #expect(try reopened.load(record.oid) == record) }
        #expect(try reopened.verify().isClean)
        try reopened.close()

        let size = try FileManager.default.attributesOfItem(atPath: directory.file("records.db"))[.size] as! Int
        let payload = latest.values.reduce(0) { $0 + $1.bytes.count + 8 }
        #expect(Double(size) < 1.3 * Double(payload), "records.db holds \(size) bytes for \(payload) of keys and records")
    }
}

import Durus
import DurusBerkeleyDB
import DurusTestSupport
import Foundation
import Synchronization
import Testing

@Suite struct BackgroundCollectionTests {
    /// 100,000 objects become garbage in one commit, which returns before
    /// they are collected; a background task deletes them in batches while a
    /// reader keeps loading. Everything is collected, sync names each OID once,
    /// nothing reachable is touched. Load latency is printed (idle vs during
    /// collection); only correctness is asserted.
    @Test func collectsInTheBackgroundWhileLoadsGoOn() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try openStore(directory.path) {
            $0.collectsInBackground = true
            $0.collectionBatchSize = 500
            $0.cacheSize = 64 << 20
        }
        defer { try? storage.close() }
        let root = try storage.newOID()
        let keep = try storage.newOIDs(count: 100)
        try storage.commit(keep.map { Record(oid: $0, data: [1, 2, 3], references: []) }
            + [Record(oid: root, data: [0], references: keep)])
        // A chain of 100,000, built in commits of 10,000 from its tail.
        var head: OID?
        for _ in 0 ..< 10 {
            let oids = try storage.newOIDs(count: 10_000)
            var batch: [Record] = []
            for (index, oid) in oids.enumerated() {
                let next = index + 1 < oids.count ? [oids[index + 1]] : head.map { [$0] } ?? []
                batch.append(Record(oid: oid, data: Array(repeating: 7, count: 40), references: next))
            }
            head = oids[0]
            try storage.commit(batch + [Record(oid: root, data: [0], references: keep + [oids[0]])])
        }
        #expect(storage.objectCount == 100_101)
        _ = try storage.sync()

        func loadLatencies(_ count: Int) throws -> [Duration] {
            let clock = ContinuousClock()
            return try (0 ..< count).map { index in
                let start = clock.now
                _ = try storage.load(keep[index % keep.count])
                return clock.now - start
            }
        }
        let idle = try loadLatencies(20_000)
        try storage.commit([Record(oid: root, data: [0], references: keep)])   // drops the chain
        var during: [Duration] = []
        var collected: Set<OID> = []
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(600)   // only against a hang: at nice 10 the collector yields to every busy thread
        while storage.objectCount > 101, clock.now < deadline {
            if let failure = storage.lastCollectionError {
                Issue.record("the background collection failed: \(failure)")
                break
            }
            during += try loadLatencies(200)
            for oid in try storage.sync() { #expect(collected.insert(oid).inserted, "\(oid) reported twice") }
        }
        for oid in try storage.sync() { #expect(collected.insert(oid).inserted) }
        #expect(storage.objectCount == 101)
        #expect(collected.count == 100_000)
        #expect(try storage.storedOIDs() == Set(keep + [root]))
        #expect(try storage.verify().isClean)
        func p(_ samples: [Duration], _ q: Double) -> Duration {
            samples.isEmpty ? .zero : samples.sorted()[min(samples.count - 1, Int(Double(samples.count) * q))]
        }
        print("load latency idle p50 \(p(idle, 0.5)) p99 \(p(idle, 0.99)); during collection p50 \(p(during, 0.5)) p99 \(p(during, 0.99)) over \(during.count) loads")
    }
}

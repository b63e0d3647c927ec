import Durus
import DurusBerkeleyDB
import DurusTestSupport
import Foundation
import Testing

/// Collection while the server serves, as a client sees it.
@Suite struct ServerCollectionTests {
    /// A client drops a chain of 100,000 objects; the commit returns before
    /// they are collected, and the store's background collector deletes them
    /// while another client keeps loading. Every load answers the right
    /// record, the loader's sync names each collected OID exactly once, and
    /// only the reachable remains. The loader's latency, idle and during the
    /// collection, is printed (the issue asks p99 within 5× of idle; this
    /// VM's figures are in Benchmarks/README.md): only correctness is asserted.
    @Test func loadsThroughTheServerWhileItCollects100000Objects() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var configuration = BerkeleyDBStorage.Configuration()
        configuration.durability = .none
        configuration.cacheSize = 64 << 20
        configuration.collectsInBackground = true
        configuration.collectionBatchSize = 500
        let storage = try BerkeleyDBStorage(path: directory.file("store"), configuration: configuration)
        let server = try startServer(storage: storage)
        defer { server.stop(); try? storage.close() }
        let writer = try server.client()
        let loader = try server.client()

        let root = try writer.newOID()
        let keep = try (0 ..< 100).map { _ in try writer.newOID() }
        try writer.commit(keep.map { record($0, "keeper \($0.rawValue)") } + [record(root, "root", references: keep)])
        var head: OID?
        var chain: Set<OID> = []
        for _ in 0 ..< 10 {
            let oids = try (0 ..< 10_000).map { _ in try writer.newOID() }
            chain.formUnion(oids)
            let batch = oids.enumerated().map { index, oid in
                record(oid, String(repeating: "x", count: 40), references: index + 1 < oids.count ? [oids[index + 1]] : head.map { [$0] } ?? [])
            }
            head = oids[0]
            try writer.commit(batch + [record(root, "root", references: keep + [oids[0]])])
        }
        #expect(storage.objectCount == 100_101)
        _ = try loader.sync()

        let clock = ContinuousClock()
        func loads(_ count: Int) throws -> [Duration] {
            try (0 ..< count).map { index in
                let oid = keep[index % keep.count]
                let start = clock.now
                let loaded = try loader.load(oid)
                let took = clock.now - start
                #expect(Array(loaded.data) == Array("keeper \(oid.rawValue)".utf8))
                return took
            }
        }
        let idle = try loads(10_000)
        try writer.commit([record(root, "root", references: keep)])   // drops the chain
        var during: [Duration] = []
        var collected: Set<OID> = []
        func absorb() throws {
            for oid in try loader.sync() where chain.contains(oid) {
                #expect(collected.insert(oid).inserted, "\(oid) reported twice")
            }
        }
        let deadline = clock.now + .seconds(600)   // only against a hang: at nice 10 the collector yields to every busy thread
        while storage.objectCount > 101, clock.now < deadline {
            during += try loads(200)
            try absorb()
        }
        try absorb()
        #expect(storage.objectCount == 101)
        #expect(collected == chain, "\(collected.count) of \(chain.count) collected OIDs reached the loader")
        #expect(try storage.verify().isClean)
        for oid in keep.prefix(10) { #expect(Array(try loader.load(oid).data) == Array("keeper \(oid.rawValue)".utf8)) }

        func p(_ samples: [Duration], _ q: Double) -> Duration {
            samples.isEmpty ? .zero : samples.sorted()[min(samples.count - 1, Int(Double(samples.count) * q))]
        }
        let ratio = Double(p(during, 0.99).components.attoseconds) / Double(max(1, p(idle, 0.99).components.attoseconds))
        print("server load latency idle p50 \(p(idle, 0.5)) p99 \(p(idle, 0.99)); while collecting 100,000: "
            + "p50 \(p(during, 0.5)) p99 \(p(during, 0.99)) over \(during.count) loads (p99 ratio \(String(format: "%.2f", ratio)))")
    }
}

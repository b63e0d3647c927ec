import Durus
import DurusBerkeleyDB
import Foundation

/// `gc`: collection cost against the amount of garbage and the size of the store.
///
/// Builds stores of `--small` and `--large` live objects (default 100,000 and
/// 2,000,000), drops chains of 10,000 and 1,000,000 objects in each, and times
/// the background collector until the queue is empty (objects freed/s); times
/// a cycle collection per million live objects; and samples load latency
/// while a collection runs against an idle store.
func runGCSuite(_ arguments: [String]) throws {
    let small = option("--small", in: arguments, default: 100_000)
    let large = option("--large", in: arguments, default: 2_000_000)
    let bigGarbage = option("--garbage", in: arguments, default: 1_000_000)
    print("gc suite: stores of \(small) and \(large) live objects; garbage chains of 10000 and \(bigGarbage)")
    print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; \(Date())")
    var rows: [Comparison] = []
    var freed: [String: Double] = [:]
    var cycleSecondsPerMillion: [Int: Double] = [:]
    var latency: (idle: [Double], during: [Double]) = ([], [])
    let clock = ContinuousClock()
    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

    for live in [small, large] {
        let path = scratchDirectory("gc-\(live)")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var configuration = BerkeleyDBStorage.Configuration()
        configuration.durability = .none
        configuration.cacheSize = 512 << 20
        configuration.collectsInBackground = true
        let storage = try BerkeleyDBStorage(path: path, configuration: configuration)
        defer { try? storage.close() }
        let root = try storage.newOID()
        // Live objects: the root → one chain of up to 10,000 per commit (a
        // parent lands with its children, so nothing is garbage meanwhile).
        var heads: [OID] = []
        var sample: [OID] = []
        var made = 1
        while made < live {
            let oids = try storage.newOIDs(count: min(10_000, live - made))
            let records = oids.enumerated().map { index, oid in
                Record(oid: oid, data: [UInt8](repeating: 3, count: 60), references: index + 1 < oids.count ? [oids[index + 1]] : [])
            }
            heads.append(oids[0])
            sample += oids.prefix(20)
            try storage.commit(records + [Record(oid: root, data: [0], references: heads)])
            made += oids.count
        }
        let hubs = heads

        func loadLatencies(_ count: Int) throws -> [Double] {
            try (0 ..< count).map { index in
                let start = clock.now
                _ = try storage.load(sample[index % sample.count])
                return seconds(clock.now - start) * 1e6
            }
        }

        for garbage in [10_000, bigGarbage] {
            // A chain hung from the root, then dropped in one commit.
            var head: OID?
            var made = 0
            while made < garbage {
                let count = min(10_000, garbage - made)
                let oids = try storage.newOIDs(count: count)
                var records: [Record] = []
                for (index, oid) in oids.enumerated() {
                    let next = index + 1 < count ? [oids[index + 1]] : head.map { [$0] } ?? []
                    records.append(Record(oid: oid, data: [UInt8](repeating: 9, count: 40), references: next))
                }
                head = oids[0]
                try storage.commit(records + [Record(oid: root, data: [0], references: hubs + [oids[0]])])
                made += count
            }
            while try storage.pendingGarbageCount() > 0 { usleep(1_000) }
            _ = try storage.sync()
            if garbage == bigGarbage, live == large { latency.idle = try loadLatencies(100_000) }
            let start = clock.now
            try storage.commit([Record(oid: root, data: [0], references: hubs)])
            var during: [Double] = []
            while storage.objectCount > live {
                if garbage == bigGarbage, live == large { during += try loadLatencies(200) }
                usleep(500)
            }
            let elapsed = seconds(clock.now - start)
            _ = try storage.sync()
            if garbage == bigGarbage, live == large { latency.during = during }
            freed["\(garbage)-in-\(live)"] = Double(garbage) / elapsed
            print("collected \(garbage) in a store of \(live): \(String(format: "%.2f", elapsed)) s")
        }
        let report = try storage.collectCycles()
        cycleSecondsPerMillion[live] = seconds(report.duration) / Double(report.marked) * 1e6
        print("cycle collection over \(report.marked) live objects: \(report.duration)")
    }

    func percentile(_ samples: [Double], _ q: Double) -> Double {
        samples.isEmpty ? 0 : samples.sorted()[min(samples.count - 1, Int(Double(samples.count) * q))]
    }
    let f = { (key: String) in freed[key] ?? 0 }
    rows.append(Comparison(name: "freed-10k-in-large-vs-in-small", unit: "objects/s", ours: f("10000-in-\(large)"), theirs: f("10000-in-\(small)")))
    rows.append(Comparison(name: "freed-1M-in-large-vs-in-small", unit: "objects/s", ours: f("\(bigGarbage)-in-\(large)"), theirs: f("\(bigGarbage)-in-\(small)")))
    rows.append(Comparison(name: "freed-1M-vs-10k-in-large", unit: "objects/s", ours: f("\(bigGarbage)-in-\(large)"), theirs: f("10000-in-\(large)")))
    rows.append(Comparison(name: "cycle-gc-s-per-million-large-vs-small", unit: "s/M live", ours: cycleSecondsPerMillion[large] ?? 0, theirs: cycleSecondsPerMillion[small] ?? 0))
    rows.append(Comparison(name: "load-p50-during-gc-vs-idle", unit: "µs", ours: percentile(latency.during, 0.5), theirs: percentile(latency.idle, 0.5)))
    rows.append(Comparison(name: "load-p99-during-gc-vs-idle", unit: "µs", ours: percentile(latency.during, 0.99), theirs: percentile(latency.idle, 0.99)))
    print("note: 'theirs' is the same store in the other condition: a ratio near 1 means the cost does not depend on it;")
    print("  the latency rows compare loads during a 1M-object background collection with the idle store (goal: p99 within 5x).")
    report("gc: background collection and the cycle collector on BerkeleyDBStorage (durability none)", theirs: "baseline", rows)
}

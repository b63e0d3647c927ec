import Durus
import DurusBerkeleyDB
import DurusClient
import DurusServer
import Foundation
import Logging
import Synchronization

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
    let served = try servedLoadsDuringCollection(garbage: 100_000)
    print(String(format: "served loads idle p50 %.0f p99 %.0f µs; while collecting 100,000: p50 %.0f p99 %.0f µs (%d loads); "
            + "collection took %.2f s", percentile(served.idle, 0.5), percentile(served.idle, 0.99),
                 percentile(served.during, 0.5), percentile(served.during, 0.99), served.during.count, served.seconds))
    let stall = try loadsDuringCheckpoint()
    print(String(format: "checkpoint of %.0f MB of dirty pages took %.2f s; loads meanwhile: p99 %.0f µs, worst %.2f ms (idle worst %.2f ms)",
                 stall.dirtyMB, stall.seconds, percentile(stall.during, 0.99), (stall.during.max() ?? 0) / 1e3,
                 (stall.idle.max() ?? 0) / 1e3))
    let f = { (key: String) in freed[key] ?? 0 }
    rows.append(Comparison(name: "freed-10k-in-large-vs-in-small", unit: "objects/s", ours: f("10000-in-\(large)"), theirs: f("10000-in-\(small)")))
    rows.append(Comparison(name: "freed-1M-in-large-vs-in-small", unit: "objects/s", ours: f("\(bigGarbage)-in-\(large)"), theirs: f("\(bigGarbage)-in-\(small)")))
    rows.append(Comparison(name: "freed-1M-vs-10k-in-large", unit: "objects/s", ours: f("\(bigGarbage)-in-\(large)"), theirs: f("10000-in-\(large)")))
    rows.append(Comparison(name: "cycle-gc-s-per-million-large-vs-small", unit: "s/M live", ours: cycleSecondsPerMillion[large] ?? 0, theirs: cycleSecondsPerMillion[small] ?? 0))
    rows.append(Comparison(name: "load-p50-during-gc-vs-idle", unit: "µs", ours: percentile(latency.during, 0.5), theirs: percentile(latency.idle, 0.5)))
    rows.append(Comparison(name: "load-p99-during-gc-vs-idle", unit: "µs", ours: percentile(latency.during, 0.99), theirs: percentile(latency.idle, 0.99)))
    rows.append(Comparison(name: "served-load-p50-during-gc-vs-idle", unit: "µs", ours: percentile(served.during, 0.5), theirs: percentile(served.idle, 0.5)))
    rows.append(Comparison(name: "served-load-p99-during-gc-vs-idle", unit: "µs", ours: percentile(served.during, 0.99), theirs: percentile(served.idle, 0.99)))
    rows.append(Comparison(name: "load-worst-during-checkpoint-vs-idle", unit: "µs", ours: stall.during.max() ?? 0, theirs: stall.idle.max() ?? 0))
    print("note: 'theirs' is the same store in the other condition: a ratio near 1 means the cost does not depend on it;")
    print("  the latency rows compare loads during a 1M-object background collection with the idle store (goal: p99 within 5x);")
    print("  served: a ClientStorage loading through DurusServer while 100,000 objects are collected; checkpoint: the worst")
    print("  load while a checkpoint writes a cache full of dirty pages, against the worst of as many idle loads.")
    report("gc: background collection and the cycle collector on BerkeleyDBStorage (durability none)", theirs: "baseline", rows)
}

/// A DurusServer over a store of 10,000 live objects with background
/// collection; one ClientStorage loads (idle, then while a chain of
/// `garbage` objects dropped in one commit is collected). Microseconds.
private func servedLoadsDuringCollection(garbage: Int) throws -> (idle: [Double], during: [Double], seconds: Double) {
    let path = scratchDirectory("gc-served")
    defer { try? FileManager.default.removeItem(atPath: path) }
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.durability = .none
    configuration.collectsInBackground = true
    let storage = try BerkeleyDBStorage(path: path, configuration: configuration)
    defer { try? storage.close() }
    var logger = Logger(label: "durus-bench.gc")
    logger.logLevel = .warning
    let server = try DurusServer(storage: storage, configuration: ServerConfiguration(address: .tcp(host: "127.0.0.1", port: 0)),
                                 logger: logger)
    defer { server.shutdown(); server.waitUntilStopped() }
    let client = try ClientStorage(address: server.address)
    defer { try? client.close() }
    let root = try client.newOID()
    var keep: [OID] = []
    for _ in 0 ..< 10_000 { keep.append(try client.newOID()) }
    try client.commit(keep.map { Record(oid: $0, data: [UInt8](repeating: 5, count: 60), references: []) }
        + [Record(oid: root, data: [0], references: keep)])
    var head: OID?
    var made = 0
    while made < garbage {
        let count = min(10_000, garbage - made)
        var oids: [OID] = []
        for _ in 0 ..< count { oids.append(try client.newOID()) }
        let records = oids.enumerated().map { index, oid in
            Record(oid: oid, data: [UInt8](repeating: 9, count: 40), references: index + 1 < count ? [oids[index + 1]] : head.map { [$0] } ?? [])
        }
        head = oids[0]
        try client.commit(records + [Record(oid: root, data: [0], references: keep + [oids[0]])])
        made += count
    }
    _ = try client.sync()
    let clock = ContinuousClock()
    func loads(_ count: Int) throws -> [Double] {
        try (0 ..< count).map { index in
            let start = clock.now
            _ = try client.load(keep[(index &* 7919) % keep.count])
            return (clock.now - start).seconds * 1e6
        }
    }
    let idle = try loads(50_000)
    let start = clock.now
    try client.commit([Record(oid: root, data: [0], references: keep)])
    var during: [Double] = []
    while storage.objectCount > keep.count + 1 {
        during += try loads(200)
        _ = try client.sync()
    }
    return (idle, during, (clock.now - start).seconds)
}

/// Loads (in-process, one thread) while a checkpoint writes out a cache
/// full of dirty pages on another: the worst load, against the worst of as
/// many loads with no checkpoint. Microseconds.
private func loadsDuringCheckpoint() throws -> (idle: [Double], during: [Double], seconds: Double, dirtyMB: Double) {
    let path = scratchDirectory("gc-checkpoint")
    defer { try? FileManager.default.removeItem(atPath: path) }
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.durability = .none
    configuration.cacheSize = 256 << 20
    configuration.checkpointInterval = .seconds(3600)
    let storage = try BerkeleyDBStorage(path: path, configuration: configuration)
    defer { try? storage.close() }
    let root = try storage.newOID()
    let oids = try storage.newOIDs(count: 400_000)
    var hubs: [OID] = []
    for start in stride(from: 0, to: oids.count, by: 10_000) {
        let hub = try storage.newOID()
        hubs.append(hub)
        let slice = Array(oids[start ..< start + 10_000])
        try storage.commit(slice.map { Record(oid: $0, data: [UInt8](repeating: 1, count: 300), references: []) }
            + [Record(oid: hub, data: [1], references: slice), Record(oid: root, data: [0], references: hubs)])
    }
    let clock = ContinuousClock()
    func loads(until done: () -> Bool) throws -> [Double] {
        var samples: [Double] = []
        var index = 0
        repeat {
            let start = clock.now
            _ = try storage.load(oids[(index &* 7919) % oids.count])
            samples.append((clock.now - start).seconds * 1e6)
            index += 1
        } while !done()
        return samples
    }
    let finished = Atomic(false)
    let took = Mutex(0.0)
    let checkpointer = Thread {
        let start = clock.now
        try? storage.checkpoint()
        took.withLock { $0 = (clock.now - start).seconds }
        finished.store(true, ordering: .releasing)
    }
    checkpointer.start()
    let during = try loads { finished.load(ordering: .acquiring) }
    var idleCount = 0
    let idle = try loads { idleCount += 1; return idleCount >= during.count }
    return (idle, during, took.withLock { $0 }, Double(oids.count * 330) / 1e6)
}

import Durus
import DurusBerkeleyDB
import Foundation

/// `storage`: BerkeleyDBStorage against a plain libdb loop on the same records.
func runStorageSuite(_ arguments: [String]) throws {
    let objects = option("--objects", in: arguments, default: 100_000)
    let loads = option("--loads", in: arguments, default: 300_000)
    let cacheSize = 256 << 20
    print("storage suite: \(objects) objects of 100–300 bytes, \(loads) random loads, cache \(cacheSize >> 20) MiB")
    print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB; \(Date())")

    // The same records for both: a root referencing 100 hubs, each hub its share of leaves.
    var generator = BenchRandom(state: 42)
    let hubs = 100
    var records: [Record] = []
    records.reserveCapacity(objects)
    records.append(Record(oid: 0, data: [UInt8](repeating: 1, count: 120), references: (1 ... UInt64(hubs)).map { OID($0) }))
    for i in 1 ..< objects {
        let oid = OID(UInt64(i))
        var refs: [OID] = []
        if i <= hubs {
            refs = stride(from: i + hubs, to: objects, by: hubs).map { OID(UInt64($0)) }
        }
        let size = Int.random(in: 100 ... 300, using: &generator)
        records.append(Record(oid: oid, data: (0 ..< size).map { _ in UInt8.random(in: 0 ... 255, using: &generator) },
                              references: refs))
    }
    let order = (0 ..< loads).map { _ in OID(UInt64.random(in: 0 ..< UInt64(objects), using: &generator)) }

    var rows: [Comparison] = []

    // Ours.
    let ourPath = scratchDirectory("ours")
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.cacheSize = cacheSize
    configuration.durability = .none
    var storage: BerkeleyDBStorage? = try BerkeleyDBStorage(path: ourPath, configuration: configuration)
    for _ in 0 ..< objects { _ = try storage!.newOID() }
    // One commit, as Durus loads a graph: in smaller ones, a batch would either
    // reference objects not yet stored or leave its objects unreferenced.
    try storage!.commit(records)
    guard storage!.objectCount == objects else { throw DurusError.corruptStore(path: ourPath, reason: "bulk load lost objects") }

    // Theirs.
    let raw = try RawBerkeleyDB(path: scratchDirectory("raw"), cacheSize: cacheSize)
    defer { raw.close() }
    try raw.setDurability("none")
    for start in stride(from: 0, to: objects, by: 1000) {
        try raw.put(Array(records[start ..< min(objects, start + 1000)]))
    }

    // Random loads (warm cache; one pass first to warm both).
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 8)
    defer { buffer.deallocate() }
    var checksum = 0
    for oid in order.prefix(objects) {
        checksum &+= try storage!.load(oid).bytes.count
        checksum &-= try raw.get(oid, into: buffer)
    }
    let loaded = try compare(loads / 3, ours: { checksum &+= try storage!.load(order[$0]).bytes.count },
                             theirs: { checksum &-= try raw.get(order[$0], into: buffer) })
    guard checksum == 0 else { throw DurusError.corruptStore(path: ourPath, reason: "loads disagree") }
    rows.append(Comparison(name: "load-random", unit: "loads/s", ours: loaded.ours, theirs: loaded.theirs))

    // Commits in each durability mode: rewrites of existing leaves (no reference changes).
    let leaves = Array(records[(hubs + 1)...])
    for durability in Durability.allCases {
        try storage!.close()
        storage = nil
        configuration.durability = durability
        storage = try BerkeleyDBStorage(path: ourPath, configuration: configuration)
        try raw.setDurability(durability.rawValue)
        let singles = durability == .full ? 500 : 10_000
        let one = try compare(singles, ours: { try storage!.commit([leaves[$0 % leaves.count]]) },
                              theirs: { try raw.put([leaves[$0 % leaves.count]]) })
        rows.append(Comparison(name: "commit-1-\(durability.rawValue)", unit: "commits/s", ours: one.ours, theirs: one.theirs))
        let batches = durability == .full ? 10 : 20
        func batch(_ i: Int) -> [Record] {
            let start = (i * 1000) % (leaves.count - 1000)
            return Array(leaves[start ..< start + 1000])
        }
        let thousand = try compare(batches, ours: { try storage!.commit(batch($0)) }, theirs: { try raw.put(batch($0)) })
        rows.append(Comparison(name: "commit-1000-\(durability.rawValue)", unit: "commits/s",
                               ours: thousand.ours, theirs: thousand.theirs))
        if durability == .full {
            rows.append(try concurrentDurableCommits(storage!, raw, leaves))
        }
    }
    let verified = try storage!.verify()
    try storage!.close()
    try? FileManager.default.removeItem(atPath: ourPath)
    guard verified.isClean else { throw DurusError.corruptStore(path: ourPath, reason: "\(verified)") }

    report("storage: BerkeleyDBStorage vs. a plain libdb loop (same env settings, same records)", theirs: "raw libdb", rows)
}

/// Durable one-record commits from 4 threads at once: ours through 4 sessions
/// of one hub (the path of a `Database`'s connections, group commit
/// included), theirs 4 threads committing with libdb's own synced commit.
/// Each thread rewrites records of its own, so nothing conflicts.
private func concurrentDurableCommits(_ storage: BerkeleyDBStorage, _ raw: RawBerkeleyDB, _ leaves: [Record]) throws
    -> Comparison {
    let threads = 4
    let perThread = 250
    let hub = SessionHub(storage: storage)
    let sessions = (0 ..< threads).map { _ in hub.openSession() }
    defer { for session in sessions { try? session.close() } }
    let baseline = Unchecked(raw)
    @Sendable func record(_ thread: Int, _ index: Int) -> Record { leaves[(thread + threads * index) % leaves.count] }
    func measure(_ commit: @escaping @Sendable (Int, Int) throws -> Void) throws -> Double {
        let start = ContinuousClock.now
        _ = try onThreads(threads) { thread in
            for index in 0 ..< perThread { try commit(thread, index) }
        }
        return Double(threads * perThread) / (ContinuousClock.now - start).seconds
    }
    var best = (ours: 0.0, theirs: 0.0)
    for _ in 0 ..< 3 {
        best.ours = max(best.ours, try measure { thread, index in try sessions[thread].commit([record(thread, index)]) })
        best.theirs = max(best.theirs, try measure { thread, index in try baseline.value.put([record(thread, index)]) })
    }
    return Comparison(name: "commit-1-full-4-threads", unit: "commits/s", ours: best.ours, theirs: best.theirs)
}

/// A value handed to benchmark threads that are known to use it safely
/// (libdb handles opened with DB_THREAD).
private struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

import Durus
import DurusBerkeleyDB
import DurusMacros
import Foundation

/// The benchmark's object: the same three attributes as the Python side's `Item`.
@Persistent final class Item: PersistentObject {
    var name: String = ""
    var value: Int = 0
    var tags: [String] = []

    convenience init(name: String, value: Int, tags: [String]) {
        self.init()
        self.name = name
        self.value = value
        self.tags = tags
    }
}

/// 1000 consecutive items, like the Python side's PersistentDict buckets.
@Persistent final class Bucket: PersistentObject {
    var items: [Int: Item] = [:]
}

@Persistent final class BenchRoot: PersistentObject, PersistentRoot {
    var buckets: [Bucket] = []
    func item(_ number: Int) -> Item? { buckets[number / 1000].items[number] }
}

/// `objects`: the same workload through swift-durus (BerkeleyDBStorage in
/// write-no-sync mode) and Python Durus 4.3 (FileStorage, which never fsyncs:
/// the same promise).
func runObjectsSuite(_ arguments: [String]) throws {
    let objects = option("--objects", in: arguments, default: 100_000)
    let batch = option("--batch", in: arguments, default: 1_000)
    let rmw = option("--rmw", in: arguments, default: 20_000)
    let cold = option("--cold", in: arguments, default: 5_000)
    let warm = option("--warm", in: arguments, default: 200_000)
    let python = optionString("--python", in: arguments) ?? defaultPython()
    print("objects suite: \(objects) objects in commits of \(batch), \(rmw) read-modify-write commits, "
        + "\(cold) cold and \(warm) warm reads")
    print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; \(Date()); python: \(python)")

    let rounds = max(1, option("--rounds", in: arguments, default: 1))
    let scratch = scratchDirectory("objects")
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    // This VM's speed moves by half from one minute to the next: with
    // `--rounds N` both sides run N times, alternating, and each keeps its
    // best rate of every line (memory and load counts: the first round's,
    // since a later round's heap reuses pages the resident set already has).
    var theirs: [String: Double] = [:]
    var ours: [String: Double] = [:]
    for round in 0 ..< rounds {
        if rounds > 1 { print("round \(round + 1) of \(rounds)") }
        // Python first, on its own (it is single-threaded; nothing else runs meanwhile).
        // `--python none`: the Swift side alone (for profiling; the ratios are then meaningless).
        let pythonRates = python == "none" ? [:] : try runPython(python, script: pythonScript("objects_bench.py"),
                                   ["--dir", scratch, "--objects", "\(objects)", "--batch", "\(batch)",
                                    "--rmw", "\(rmw)", "--cold", "\(cold)", "--warm", "\(warm)"])
        try? FileManager.default.removeItem(atPath: scratch + "/swift-store")
        let swiftRates = try runSwiftObjects(path: scratch + "/swift-store", objects: objects, batch: batch, rmw: rmw,
                                        cold: cold, warm: warm)
        for (key, value) in pythonRates { theirs[key] = key.hasSuffix("_per_s") ? max(theirs[key] ?? 0, value) : theirs[key] ?? value }
        for (key, value) in swiftRates { ours[key] = key.hasSuffix("_per_s") ? max(ours[key] ?? 0, value) : ours[key] ?? value }
    }

    var rows: [Comparison] = []
    for (key, name, unit) in [("create_per_s", "create", "objects/s"), ("rmw_commits_per_s", "rmw-commit", "commits/s"),
                              ("cold_loads_per_s", "cold-load", "objects/s"), ("warm_reads_per_s", "warm-read", "reads/s")] {
        rows.append(Comparison(name: name, unit: unit, ours: ours[key] ?? 0, theirs: theirs[key] ?? 0))
    }
    report("objects: swift-durus (Berkeley DB, write-no-sync) vs. Python Durus 4.3 (FileStorage, no fsync)",
           theirs: "Durus 4.3", rows)
    let oursBytes = ours["bytes_per_cached_object"] ?? 0
    let theirBytes = theirs["bytes_per_cached_object"] ?? 0
    print(String(format: "memory per cached object: %.0f B (swift-durus, resident set) vs %.0f B (Durus 4.3, traced heap)",
                 oursBytes, theirBytes))
    print(String(format: "records loaded by the cold phase: %.0f (swift-durus) vs %.0f (Durus 4.3)",
                 ours["cold_loads_records"] ?? 0, theirs["cold_loads_records"] ?? 0))
    print(String(format: "ratio memory-per-object %.3f", oursBytes / max(theirBytes, 1)))
    let recordRate = ours["record_loads_per_s"] ?? 1
    print(String(format: "object loads by OID: %.0f/s; raw record loads of the same store: %.0f/s",
                 ours["cold_get_per_s"] ?? 0, recordRate))
    print(String(format: "ratio cold-object-load-vs-record-load %.3f", (ours["cold_get_per_s"] ?? 0) / recordRate))
    // Ceilings, measured in the same run with nothing of ours in between: the
    // records put by a plain libdb loop (one put each, commits of `--batch`),
    // one-record commits of a plain libdb loop, and warm reads of the same
    // graph of plain Swift classes. A "ceiling" line is the most any library could reach
    // on that line as a multiple of Durus 4.3 (the goal is 10).
    print("ceilings: a plain libdb loop's puts in commits of \(batch) and its 1-record commits (write-no-sync),")
    print("  and the same graph of plain Swift classes")
    let ceilings = [("create", "create_per_s", "raw_puts_per_s", "raw-libdb-puts"),
                    ("rmw-commit", "rmw_commits_per_s", "raw_commits_per_s", "raw-libdb-1-record-commit"),
                    ("warm-read", "warm_reads_per_s", "plain_warm_reads_per_s", "plain-swift-warm-read")]
    for (line, key, ceiling, label) in ceilings {
        let limit = ours[ceiling] ?? 0
        print(String(format: "  %@: ours %.0f/s, %@ %.0f/s, Durus 4.3 %.0f/s", line, ours[key] ?? 0, label, limit,
                     theirs[key] ?? 0))
        if let python = theirs[key], python > 0 {
            print(String(format: "ceiling %@ %.3f× Durus 4.3 (%@)", line, limit / python, label))
        }
    }
    for (line, key, ceiling, label) in ceilings {
        print(String(format: "ratio %@-vs-%@ %.3f", line, label, (ours[key] ?? 0) / max(ours[ceiling] ?? 0, 1)))
    }
}

/// The objects suite's create phase alone (a new store, `--objects` items in
/// commits of `--batch`), to profile it with perf or callgrind.
func runObjectsCreateProfile(_ arguments: [String]) throws {
    let objects = option("--objects", in: arguments, default: 100_000)
    let batch = option("--batch", in: arguments, default: 1_000)
    let scratch = scratchDirectory("objects-create")
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.durability = .writeNoSync
    configuration.cacheSize = 256 << 20
    let storage = try BerkeleyDBStorage(path: scratch + "/store", configuration: configuration)
    defer { try? storage.close() }
    let database = try Database(storage: storage, root: BenchRoot.self, types: [Item.self, Bucket.self],
                                configuration: .init(cacheSize: max(1_000_000, 2 * objects)))
    let connection = try database.open()
    let root = try connection.root(BenchRoot.self)
    let perSecond = try rate(1) { _ in try createItems(root, connection, objects: objects, batch: batch) } * Double(objects)
    print(String(format: "objects-create: %d objects in commits of %d: %.0f objects/s", objects, batch, perSecond))
    let cold = option("--cold", in: arguments, default: 0)
    if cold > 0 { try runColdLoadProfile(database, storage, root, objects: objects, cold: cold) }
    // Then, with --rmw N, N read-modify-write commits of one random item each.
    let rmw = option("--rmw", in: arguments, default: 0)
    guard rmw > 0 else { return }
    var random = SystemRandomNumberGenerator()
    let commits = try rate(1) { _ in
        for _ in 0 ..< rmw {
            root.item(Int.random(in: 0 ..< objects, using: &random))?.value += 1
            try connection.commit()
        }
    } * Double(rmw)
    print(String(format: "objects-create: %d read-modify-write commits: %.0f commits/s", rmw, commits))
}

/// With `--cold N` after the create phase: N items loaded by OID through a
/// new connection (decoded into objects), then the same N records loaded
/// from the storage alone.
func runColdLoadProfile(_ database: Database, _ storage: BerkeleyDBStorage, _ root: BenchRoot, objects: Int, cold: Int) throws {
    var oids: [OID] = []
    for number in stride(from: 0, to: objects, by: max(1, objects / cold)) {
        if let oid = root.item(number)?.oid { oids.append(oid) }
    }
    let connection = try database.open()
    var checksum = 0
    let loads = try rate(oids.count) { checksum &+= (try connection.get(oids[$0]) as? Item)?.value ?? 0 }
    let records = try rate(oids.count) { checksum &+= try storage.load(oids[$0]).bytes.count }
    print(String(format: "objects-create: %d object loads by OID: %.0f/s; record loads: %.0f/s (checksum %d)",
                 oids.count, loads, records, checksum))
}

/// The create phase: `objects` items in buckets of 1,000 under `root`, committed every `batch`.
func createItems(_ root: BenchRoot, _ connection: Connection, objects: Int, batch: Int) throws {
    for number in 0 ..< objects {
        if number % 1000 == 0 { root.buckets.append(Bucket()) }
        let item = Item(name: "item-\(number)", value: number, tags: ["t\(number % 7)", "u\(number % 11)"])
        root.buckets[number / 1000].items[number] = item
        if (number + 1) % batch == 0 { try connection.commit() }
    }
    try connection.commit()
}

/// The Swift side of the objects suite, on a new store at `path`: its rates by name.
func runSwiftObjects(path: String, objects: Int, batch: Int, rmw: Int, cold: Int, warm: Int) throws -> [String: Double] {
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.durability = .writeNoSync
    configuration.cacheSize = 256 << 20
    var random = BenchRandom(state: 7)
    let cacheSize = max(1_000_000, 2 * objects)
    var ours: [String: Double] = [:]

    do {
        let storage = try BerkeleyDBStorage(path: path, configuration: configuration)
        defer { try? storage.close() }
        let database = try Database(storage: storage, root: BenchRoot.self, types: [Item.self, Bucket.self],
                                    configuration: .init(cacheSize: cacheSize))
        let connection = try database.open()
        let root = try connection.root(BenchRoot.self)

        ours["create_per_s"] = try rate(1) { _ in
            try createItems(root, connection, objects: objects, batch: batch)
        } * Double(objects)

        ours["rmw_commits_per_s"] = try rate(rmw) { _ in
            let item = root.item(Int.random(in: 0 ..< objects, using: &random))
            item?.value += 1
            try connection.commit()
        }

        // Raw record loads of the same store, for the cold-load goal.
        var records: [Record] = []
        try storage.forEachRecord { records.append($0) }
        let oids = records.map(\.oid)
        ours["record_loads_per_s"] = try rate(cold) { _ in
            _ = try storage.load(oids[Int.random(in: 0 ..< oids.count, using: &random)])
        }

        // The ceilings of two lines: the same records through a plain libdb
        // loop, nothing of ours in between (write-no-sync, as ours).
        let raw = try RawBerkeleyDB(path: path + "-raw", cacheSize: configuration.cacheSize)
        defer { raw.close() }
        try raw.setDurability("write-no-sync")
        ours["raw_puts_per_s"] = try rate(1) { _ in
            for start in stride(from: 0, to: records.count, by: batch) {
                try raw.put(Array(records[start ..< min(records.count, start + batch)]))
            }
        } * Double(records.count)
        // A commit of one record, put without reading it first: less than a
        // read-modify-write commit can do.
        ours["raw_commits_per_s"] = try rate(rmw) { _ in
            try raw.put([records[Int.random(in: 0 ..< records.count, using: &random)]])
        }

        let fresh = try database.open()
        let freshRoot = try fresh.root(BenchRoot.self)
        let before = fresh.loadCount
        var checksum = 0
        ours["cold_loads_per_s"] = rate(cold) { _ in
            checksum &+= freshRoot.item(Int.random(in: 0 ..< objects, using: &random))?.value ?? 0
        }
        ours["cold_loads_records"] = Double(fresh.loadCount - before)
        try fresh.commit()

        // Object loads by OID, each one record: the per-object cost of decoding and ghosting.
        var itemOIDs: [OID] = []
        for number in stride(from: 0, to: objects, by: max(1, objects / cold)) {
            if let oid = root.item(number)?.oid { itemOIDs.append(oid) }
        }
        let byOID = try database.open()
        ours["cold_get_per_s"] = try rate(itemOIDs.count) { checksum &+= (try byOID.get(itemOIDs[$0]) as? Item)?.value ?? 0 }

        var total = 0
        for number in 0 ..< objects { total += freshRoot.item(number)?.value ?? 0 }
        guard total == objects * (objects - 1) / 2 + rmw else {
            throw DurusError.corruptStore(path: path, reason: "stored values sum to \(total)")
        }
        let strays = fresh.loadCount
        ours["warm_reads_per_s"] = rate(warm) { _ in
            checksum &+= freshRoot.item(Int.random(in: 0 ..< objects, using: &random))?.value ?? 0
        }
        guard fresh.loadCount == strays else { throw DurusError.corruptStore(path: path, reason: "warm reads loaded records") }

        // The warm-read ceiling: the same shapes as plain Swift classes, no persistence.
        let plain = PlainRoot(objects: objects)
        ours["plain_warm_reads_per_s"] = rate(warm) { _ in
            checksum &+= plain.item(Int.random(in: 0 ..< objects, using: &random))?.value ?? 0
        }

        // Resident memory growth per object, loading everything into a third connection.
        let third = try database.open()
        let thirdRoot = try third.root(BenchRoot.self)
        let baseline = residentBytes()
        for number in 0 ..< objects { checksum &+= thirdRoot.item(number)?.value ?? 0 }
        ours["bytes_per_cached_object"] = Double(residentBytes() - baseline) / Double(objects)
        print("checksum \(checksum)")
    }

    return ours
}

/// The benchmark's graph as plain Swift classes: what a warm read costs with
/// no persistence at all.
final class PlainRoot {
    final class Item {
        var name: String
        var value: Int
        var tags: [String]
        init(name: String, value: Int, tags: [String]) {
            self.name = name
            self.value = value
            self.tags = tags
        }
    }
    final class Bucket { var items: [Int: Item] = [:] }
    var buckets: [Bucket] = []

    init(objects: Int) {
        for number in 0 ..< objects {
            if number % 1000 == 0 { buckets.append(Bucket()) }
            buckets[number / 1000].items[number] = Item(name: "item-\(number)", value: number,
                                                        tags: ["t\(number % 7)", "u\(number % 11)"])
        }
    }

    func item(_ number: Int) -> Item? { buckets[number / 1000].items[number] }
}

/// Resident set size of this process, from /proc/self/statm.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

import Durus
import DurusBerkeleyDB
import DurusMacros
import Foundation

/// Python's `pickle_item.Item` (Benchmarks/python/pickle_item.py), mapped.
@Persistent(python: "pickle_item.Item")
final class PickleItem: PersistentObject {
    var name: String = ""
    var value: Int = 0
    var tags: [String] = []
}

/// The root Python Durus writes for a new file: a PersistentDict, here holding the buckets.
typealias PickleBuckets = DurusPersistentList<DurusPersistentDict<Int, PickleItem>>
typealias PickleRoot = DurusPersistentDict<String, PickleBuckets>

/// `pickles`: objects Python Durus 4.3 and Swift share (Durus pickles, read
/// and written as a mapped Swift type) against Python Durus handling the same
/// objects. Cold loads: the objects Python wrote into a Durus file, loaded by
/// OID from that very file (swift-durus's FileStorage vs Durus's, a new
/// connection each side). Create: the same items and buckets, stored as
/// Durus pickles by Swift (Berkeley DB, write-no-sync) vs by Python (its
/// FileStorage, which never fsyncs).
func runPicklesSuite(_ arguments: [String]) throws {
    let objects = option("--objects", in: arguments, default: 100_000)
    let batch = option("--batch", in: arguments, default: 1_000)
    let cold = option("--cold", in: arguments, default: 5_000)
    let rounds = max(1, option("--rounds", in: arguments, default: 1))
    let python = optionString("--python", in: arguments) ?? defaultPython()
    print("pickles suite: \(objects) objects of a Python class in commits of \(batch), \(cold) cold loads by OID")
    print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; \(Date()); python: \(python)")
    let scratch = scratchDirectory("pickles")
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    PersistentTypes.register([PickleItem.self, PickleBuckets.self, DurusPersistentDict<Int, PickleItem>.self])

    var theirs: [String: Double] = [:], ours: [String: Double] = [:]
    for round in 0 ..< rounds {
        if rounds > 1 { print("round \(round + 1) of \(rounds)") }
        let file = scratch + "/python.durus"
        let pythonRates = try runPython(python, script: pythonScript("pickles_bench.py"),
                                        ["--file", file, "--objects", "\(objects)", "--batch", "\(batch)", "--cold", "\(cold)"])
        for (key, value) in pythonRates { theirs[key] = max(theirs[key] ?? 0, value) }

        // Cold loads of Python's objects, from Python's file.
        let source = try FileStorage(path: file, options: .init(readOnly: true))
        var itemOIDs: [OID] = []
        try source.forEachRecord { record in if record.className == "pickle_item.Item" { itemOIDs.append(record.oid) } }
        guard itemOIDs.count == objects else { throw BenchError(description: "found \(itemOIDs.count) items in Python's file") }
        let database = try Database(storage: source, root: PickleRoot.self, types: [PickleItem.self])
        let reader = try database.open()
        var random = BenchRandom(state: 7)
        let picked = (0 ..< cold).map { _ in itemOIDs[Int.random(in: 0 ..< itemOIDs.count, using: &random)] }
        var checksum = 0
        let coldRate = try rate(cold) { checksum &+= (try reader.get(picked[$0]) as? PickleItem)?.value ?? 0 }
        ours["cold_loads_per_s"] = max(ours["cold_loads_per_s"] ?? 0, coldRate)
        try source.close()

        // Creating the same objects as Durus pickles.
        let path = scratch + "/swift-store"
        try? FileManager.default.removeItem(atPath: path)
        var configuration = BerkeleyDBStorage.Configuration()
        configuration.durability = .writeNoSync
        configuration.cacheSize = 256 << 20
        let storage = try BerkeleyDBStorage(path: path, configuration: configuration)
        let store = try Database(storage: storage, root: PickleRoot.self, types: [PickleItem.self])
        let connection = try store.open()
        let root = try connection.root(PickleRoot.self)
        let buckets = PickleBuckets()
        root["buckets"] = buckets
        try connection.commit()
        let createRate = try rate(1) { _ in try createPickleItems(buckets, connection, objects: objects, batch: batch) } * Double(objects)
        ours["create_per_s"] = max(ours["create_per_s"] ?? 0, createRate)
        try store.close()
        print("checksum \(checksum)")
    }
    report("pickles: Durus pickles through swift-durus (mapped Swift type) vs. Python Durus 4.3", theirs: "Durus 4.3", [
        Comparison(name: "python-pickle-cold-load-vs-python", unit: "objects/s", ours: ours["cold_loads_per_s"] ?? 0,
                   theirs: theirs["cold_loads_per_s"] ?? 0),
        Comparison(name: "python-pickle-create-vs-python", unit: "objects/s", ours: ours["create_per_s"] ?? 0,
                   theirs: theirs["create_per_s"] ?? 0),
    ])
}

/// The create phase: `objects` mapped items in buckets of 1,000, committed every `batch`.
func createPickleItems(_ buckets: PickleBuckets, _ connection: Connection, objects: Int, batch: Int) throws {
    for number in 0 ..< objects {
        if number % 1000 == 0 { buckets.append(DurusPersistentDict()) }
        let item = PickleItem()
        (item.name, item.value, item.tags) = ("item-\(number)", number, ["t\(number % 7)", "k\(number % 13)"])
        buckets[buckets.count - 1][number] = item
        if (number + 1) % batch == 0 { try connection.commit() }
    }
    try connection.commit()
}

/// The pickles suite's create phase alone, to profile it.
func runPicklesCreateProfile(_ arguments: [String]) throws {
    let objects = option("--objects", in: arguments, default: 100_000)
    let scratch = scratchDirectory("pickles-create")
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.durability = .writeNoSync
    configuration.cacheSize = 256 << 20
    let store = try Database(storage: try BerkeleyDBStorage(path: scratch + "/store", configuration: configuration),
                             root: PickleRoot.self, types: [PickleItem.self])
    defer { try? store.close() }
    let connection = try store.open()
    let buckets = PickleBuckets()
    try connection.root(PickleRoot.self)["buckets"] = buckets
    try connection.commit()
    let perSecond = try rate(1) { _ in try createPickleItems(buckets, connection, objects: objects, batch: 1000) } * Double(objects)
    print(String(format: "pickles-create: %d objects: %.0f objects/s", objects, perSecond))
}

/// The pickles suite's cold loads alone, from a file pickles_bench.py wrote
/// (`--file PATH`), to profile them.
func runPicklesColdProfile(_ arguments: [String]) throws {
    guard let file = optionString("--file", in: arguments) else { throw BenchError(description: "pickles-cold needs --file PATH") }
    let cold = option("--cold", in: arguments, default: 20_000)
    PersistentTypes.register([PickleItem.self, PickleBuckets.self, DurusPersistentDict<Int, PickleItem>.self])
    let source = try FileStorage(path: file, options: .init(readOnly: true))
    defer { try? source.close() }
    var itemOIDs: [OID] = []
    try source.forEachRecord { record in if record.className == "pickle_item.Item" { itemOIDs.append(record.oid) } }
    let reader = try Database(storage: source, root: PickleRoot.self, types: [PickleItem.self]).open()
    var random = BenchRandom(state: 7)
    let picked = (0 ..< cold).map { _ in itemOIDs[Int.random(in: 0 ..< itemOIDs.count, using: &random)] }
    var checksum = 0
    let perSecond = try rate(cold) { checksum &+= (try reader.get(picked[$0]) as? PickleItem)?.value ?? 0 }
    print(String(format: "pickles-cold: %d loads of %d objects: %.0f loads/s (checksum %d)", cold, itemOIDs.count, perSecond, checksum))
}

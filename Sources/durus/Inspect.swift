import ArgumentParser
import Durus
import DurusBerkeleyDB
import Foundation

/// Opens a store for inspection: read-only, so it works while a server holds it.
func openForReading(_ path: String) throws -> BerkeleyDBStorage {
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.readOnly = true
    configuration.createIfMissing = false
    return try BerkeleyDBStorage(path: path, configuration: configuration)
}

/// Runs `body` on the store at `path` opened read-only, reporting failures in one line.
func inspecting(_ path: String, _ body: (BerkeleyDBStorage) throws -> Void) throws {
    try reporting {
        let storage = try openForReading(path)
        defer { try? storage.close() }
        try body(storage)
    }
}

/// Prints `object` as JSON (sorted keys) on standard output.
func printJSON(_ object: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// Runs `body`, turning any failure into the one-line message and status 2.
func reporting(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        throw CommandFailure.report(error)
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Objects, bytes, pending garbage and log size of a store.",
        discussion: "Works on a store a running server holds open.\n\nExamples:\n  durus stats durus-data\n  durus stats durus-data --json"
    )

    @Argument(help: "The store's directory.") var db: String
    @Flag(help: "Print JSON for scripts.") var json = false

    func run() throws {
        try inspecting(db) { storage in
            let logs = (try? FileManager.default.contentsOfDirectory(atPath: db)) ?? []
            let logBytes = logs.filter { $0.hasPrefix("log.") }.reduce(0) { total, name in
                total + ((try? FileManager.default.attributesOfItem(atPath: db + "/" + name)[.size] as? Int) ?? 0)
            }
            var values: [String: Any] = [
                "objects": storage.objectCount, "bytes": storage.byteCount,
                "garbagePending": try storage.pendingGarbageCount(), "logBytes": logBytes,
                "accessMethod": storage.accessMethod.rawValue,
            ]
            let garbage = try storage.lastGarbageCollection()
            if let garbage {
                values["lastCollection"] = ["collected": garbage.collected, "seconds": garbage.duration.seconds,
                                            "finished": timestamp(garbage.finished)]
            }
            let running = try storage.cycleCollectionProgress()
            if let running {
                values["cycleCollection"] = ["phase": running.phase.rawValue, "marked": running.marked,
                                             "unreachable": running.unreachable, "swept": running.swept,
                                             "started": timestamp(running.started), "pid": Int(running.processID),
                                             "running": running.isRunning]
            }
            let cycles = try storage.lastCycleCollection()
            if let cycles {
                values["lastCycleCollection"] = ["marked": cycles.marked, "collected": cycles.collected,
                                                 "seconds": cycles.duration.seconds, "finished": timestamp(cycles.finished)]
            }
            let replication = ReplicationStatus.read(db)
            if let replication { values["replication"] = replication }
            if json { return try printJSON(values) }
            print("objects          \(storage.objectCount)")
            print("bytes            \(storage.byteCount)")
            print("garbage pending  \(values["garbagePending"]!)")
            print("log bytes        \(logBytes)")
            print("access method    \(storage.accessMethod.rawValue)")
            if let garbage {
                print("last gc          \(garbage.collected) collected in \(formatted(garbage.duration)), finished \(timestamp(garbage.finished))")
            }
            if let running {
                let counts = running.phase == .marking
                    ? "\(running.marked) marked live so far"
                    : "\(running.swept) of \(running.unreachable) unreachable swept, \(running.marked) marked live"
                let state = running.isRunning
                    ? "running since \(timestamp(running.started)) in process \(running.processID)"
                    : "interrupted (process \(running.processID) is gone); the next run starts over"
                print("cycle gc         \(running.phase.rawValue): \(counts); \(state)")
            }
            if let cycles {
                print("last cycle gc    \(cycles.collected) collected, \(cycles.marked) marked live, in \(formatted(cycles.duration)), "
                    + "finished \(timestamp(cycles.finished))")
            }
            if let replication { ReplicationStatus.lines(replication).forEach { print($0) } }
        }
    }
}

/// A time as ISO 8601, in UTC.
func timestamp(_ date: Date) -> String { date.formatted(.iso8601) }

/// A duration in seconds with millisecond precision.
func formatted(_ duration: Duration) -> String { String(format: "%.3f s", duration.seconds) }

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

struct Census: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Objects and bytes per class, for Swift records and Python pickles alike.",
        discussion: "Reads every record once. Works on a store a running server holds open.\n\nExamples:\n  durus census durus-data\n  durus census durus-data --json"
    )

    @Argument(help: "The store's directory.") var db: String
    @Flag(help: "Print JSON for scripts.") var json = false

    func run() throws {
        try inspecting(db) { storage in
            var classes: [String: (objects: Int, bytes: Int)] = [:]
            try storage.forEachRecord { record in
                let name = record.className ?? "?"
                classes[name, default: (0, 0)].objects += 1
                classes[name, default: (0, 0)].bytes += record.bytes.count
            }
            let rows = classes.sorted { ($0.value.objects, $1.key) > ($1.value.objects, $0.key) }
            if json {
                return try printJSON(Dictionary(uniqueKeysWithValues: rows.map { ($0.key, ["objects": $0.value.objects, "bytes": $0.value.bytes]) }))
            }
            for (name, tally) in rows {
                print(String(tally.objects).padding(toLength: 10, withPad: " ", startingAt: 0)
                    + String(tally.bytes).padding(toLength: 14, withPad: " ", startingAt: 0) + name)
            }
        }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a store: every record, every reference count, reachability.",
        discussion: "Exit status 0 when clean, 1 when a problem is found, 2 when the store cannot be read.\n\nExample:\n  durus verify durus-data"
    )

    @Argument(help: "The store's directory.") var db: String
    @Flag(help: "Print JSON for scripts.") var json = false

    func run() throws {
        var clean = false
        try inspecting(db) { storage in
            let report = try storage.verify()
            clean = report.isClean
            if json {
                try printJSON([
                    "clean": report.isClean, "objects": report.objects, "bytes": report.bytes,
                    "malformed": report.malformedCount, "dangling": report.danglingCount,
                    "countMismatches": report.countMismatchCount, "unreachable": report.unreachableCount,
                    "leaked": report.leakedCount, "pendingGarbage": report.pendingGarbage,
                ])
            } else {
                print(report)
            }
        }
        if !clean { throw ExitCode(1) }
    }
}

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show one record: its class, references, size and state, for Swift records and Python pickles alike.",
        discussion: "Example:\n  durus dump durus-data 0\n  durus dump durus-data 0 --json"
    )

    @Argument(help: "The store's directory.") var db: String
    @Argument(help: "The OID, a decimal number (0 is the root).") var oid: UInt64
    @Flag(help: "Print JSON for scripts.") var json = false

    func run() throws {
        try inspecting(db) { storage in
            let record = try storage.load(OID(oid))
            let state: Any? = if let swift = try record.swiftState() { jsonValue(swift) }
                else if let python = try record.pythonState() { jsonValue(python) } else { nil }
            if json {
                return try printJSON([
                    "oid": oid, "class": record.className ?? NSNull(), "pythonPickle": record.isPythonPickle,
                    "bytes": record.bytes.count, "references": record.references.map(\.rawValue), "state": state ?? NSNull(),
                ] as [String: Any])
            }
            print("oid         \(oid)")
            print("class       \(record.className ?? "?")\(record.isPythonPickle ? " (Python pickle)" : "")")
            print("bytes       \(record.bytes.count) (data \(record.data.count))")
            print("references  \(record.references.map { "\($0.rawValue)" }.joined(separator: " "))")
            if let state, let text = try? JSONSerialization.data(withJSONObject: state, options: [.sortedKeys, .fragmentsAllowed]) {
                print("state       \(String(decoding: text, as: UTF8.self))")
            }
        }
    }
}

/// A Swift state as JSON: keyed values as objects, references as
/// `{"oid": n, "class": name}`, bytes as `{"bytes": hex}`.
func jsonValue(_ value: StateValue) -> Any {
    switch value {
    case .null: NSNull()
    case .bool(let b): b
    case .int(let i): i
    case .uint(let u): u
    case .double(let d): d.isFinite ? d as Any : String(d)
    case .float(let f): f.isFinite ? Double(f) as Any : String(f)
    case .string(let s): s
    case .bytes(let b): ["bytes": hex(b)]
    case .array(let items): items.map(jsonValue)
    case .keyed(let pairs): Dictionary(pairs.map { ($0.0, jsonValue($0.1)) }, uniquingKeysWith: { _, last in last })
    case .reference(let oid, let typeName): ["oid": oid.rawValue, "class": typeName] as [String: Any]
    case .optional(let inner): ["some": jsonValue(inner)]
    }
}

/// A Python state as JSON: a dict keyed by strings as an object (any other
/// dict as `{"dict": [[key, value], …]}`), tuples and lists as arrays, sets as
/// `{"set": […]}`, references as `{"oid": n, "class": name}`, bytes as
/// `{"bytes": hex}`, other objects as `{"object": callable, "state": …}`.
func jsonValue(_ value: PickleValue) -> Any {
    switch value {
    case .null: NSNull()
    case .bool(let b): b
    case .int(let i): i
    case .bigInt(let big): ["int": "\(big)"]
    case .double(let d): d.isFinite ? d as Any : String(d)
    case .bytes(let b): ["bytes": hex(b)]
    case .string(let s): s
    case .tuple(let items), .list(let items): items.map(jsonValue)
    case .set(let items), .frozenset(let items): ["set": items.map(jsonValue)]
    case .dict(let entries):
        if entries.allSatisfy({ if case .string = $0.key { true } else { false } }) {
            Dictionary(entries.map { entry -> (String, Any) in
                guard case .string(let key) = entry.key else { return ("", NSNull()) }
                return (key, jsonValue(entry.value))
            }, uniquingKeysWith: { _, last in last })
        } else {
            ["dict": entries.map { [jsonValue($0.key), jsonValue($0.value)] }]
        }
    case .global(let global): ["global": global.description]
    case .persistent(let reference): ["oid": reference.oid, "class": reference.classGlobal?.description ?? NSNull()] as [String: Any]
    case .object(let object):
        ["object": jsonValue(object.callable), "arguments": object.arguments.map(jsonValue),
         "state": object.state.map(jsonValue) ?? NSNull()] as [String: Any]
    }
}

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

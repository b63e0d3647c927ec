// durus-peers: swift-durus side by side with GRDB.swift (SQLite) on the
// workload of `durus-bench objects`.
//
//   swift run -c release --package-path Benchmarks/Peers durus-peers [--objects N] [--rounds N]
//       [--batch N] [--rmw N] [--cold N] [--warm N]
//
// Prints a table (name, ours, grdb, unit, ratio) and ends with one line per
// row: `ratio LINE-vs-grdb X`, ours ÷ GRDB (above 1 means we are faster), and
// the warm read's ceiling for class instances: `ratio warm-read-vs-plain-classes`.
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
let work = Workload(objects: option("--objects", in: arguments, default: 100_000),
                    batch: max(1, option("--batch", in: arguments, default: 1_000)),
                    rmw: option("--rmw", in: arguments, default: 5_000),
                    cold: option("--cold", in: arguments, default: 5_000),
                    warm: option("--warm", in: arguments, default: 200_000))
let rounds = max(1, option("--rounds", in: arguments, default: 1))
let lines = [("create", "objects/s"), ("rmw-commit", "commits/s"), ("cold-read", "reads/s"), ("warm-read", "reads/s")]

let scratch = "/tmp/durus-peers-\(getpid())"
do {
    try? FileManager.default.removeItem(atPath: scratch)
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }

    print("durus-peers: \(work.objects) objects in commits of \(work.batch), \(work.rmw) read-modify-write commits, "
        + "\(work.cold) cold and \(work.warm) warm reads; \(rounds) round(s)")
    print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; \(Date())")
    print("ours: swift-durus, BerkeleyDBStorage, write-no-sync")
    print("grdb: GRDB.swift DatabasePool, \(try grdbSettings(path: scratch + "/settings.sqlite"))")

    // Both sides N times, alternating which goes first; each keeps its best rate per line.
    var ours: [String: Double] = [:]
    var theirs: [String: Double] = [:]
    for round in 0 ..< rounds {
        if rounds > 1 { print("round \(round + 1) of \(rounds)") }
        let oursPath = scratch + "/ours-\(round)"
        let grdbPath = scratch + "/grdb-\(round).sqlite"
        let runOursSide = { for (key, value) in try runOurs(path: oursPath, work) { ours[key] = max(ours[key] ?? 0, value) } }
        let runGRDBSide = { for (key, value) in try runGRDB(path: grdbPath, work) { theirs[key] = max(theirs[key] ?? 0, value) } }
        if round % 2 == 0 {
            try runOursSide()
            try runGRDBSide()
        } else {
            try runGRDBSide()
            try runOursSide()
        }
        // Each round's stores go before the next round starts.
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: scratch)) ?? [] where entry != "settings.sqlite" {
            try? FileManager.default.removeItem(atPath: scratch + "/" + entry)
        }
    }

    func format(_ value: Double) -> String {
        value >= 100 ? String(format: "%.0f", value) : String(format: "%.2f", value)
    }
    print("")
    print("swift-durus (Berkeley DB, write-no-sync) vs. GRDB.swift (SQLite WAL, synchronous = NORMAL)")
    print("name".padding(toLength: 12, withPad: " ", startingAt: 0) + "ours".leftPad(14) + "grdb".leftPad(14)
        + "unit".leftPad(12) + "ratio".leftPad(9))
    for (name, unit) in lines {
        let ratio = (ours[name] ?? 0) / max(theirs[name] ?? 0, .leastNonzeroMagnitude)
        print(name.padding(toLength: 12, withPad: " ", startingAt: 0) + format(ours[name] ?? 0).leftPad(14)
            + format(theirs[name] ?? 0).leftPad(14) + unit.leftPad(12) + String(format: "%.2f", ratio).leftPad(9))
    }
    print("")
    let plain = ours["warm-read-plain-classes"] ?? 0
    print("ceiling warm-read: plain Swift classes kept the same way, \(format(plain)) reads/s, "
        + String(format: "%.2f", plain / max(theirs["warm-read"] ?? 0, .leastNonzeroMagnitude)) + "× GRDB's structs")
    print("")
    for (name, _) in lines {
        let ratio = (ours[name] ?? 0) / max(theirs[name] ?? 0, .leastNonzeroMagnitude)
        print("ratio \(name)-vs-grdb \(String(format: "%.3f", ratio))")
    }
    print("ratio warm-read-vs-plain-classes \(String(format: "%.3f", (ours["warm-read"] ?? 0) / max(plain, .leastNonzeroMagnitude)))")
} catch {
    try? FileManager.default.removeItem(atPath: scratch)
    print("durus-peers: \(error)")
    exit(1)
}

// A replication site in a process of its own, for the replication tests:
// they start three, kill the master with SIGKILL, restart it.
//
//   durus-replication-child DIR LOCAL-HOST:PORT [PEER-HOST:PORT ...]
//
// Opens DIR as a replicated BerkeleyDBStorage (tuned timeouts), prints
// "ready ROLE", then answers one line per command read from standard input:
//
//   role                  "role ROLE MASTER" (MASTER is HOST:PORT or -)
//   wait-role ROLE MS     "role ROLE" once it has it, or "timeout"
//   write N               (master) commits root = N plus a new child holding N:
//                         "ack N TOKEN", "notdurable N", or "error TEXT"
//   loop                  (master) writes 1, 2, 3, ... from the root's value on,
//                         printing "ack N" after each, until killed
//   burst N               (master) writes the next N values, the root keeping
//                         its newest 50 children (the others are garbage):
//                         "ack LAST TOKEN", or "error TEXT" at the first failure
//   read                  "root N" (the root's value) or "root -"
//   applied TOKEN MS      "applied", "behind" or "lost"
//   digest                "digest COUNT HASH" over every record
//   sync                  "sync N" (how many OIDs sync() reported)
//   sequence              "sequence N" (the last commit-log entry seen)
//   quit                  closes the store, prints "bye"
import Durus
import DurusBerkeleyDB
import Foundation

func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

let arguments = CommandLine.arguments
guard arguments.count >= 3, let local = BerkeleyDBStorage.Replication.Address(arguments[2]) else {
    FileHandle.standardError.write(Data("usage: durus-replication-child DIR HOST:PORT [PEER ...]\n".utf8))
    exit(2)
}
var replication = BerkeleyDBStorage.Replication(local: local, peers: arguments.dropFirst(3).compactMap { .init($0) })
replication.startTimeout = .milliseconds(Int(ProcessInfo.processInfo.environment["DURUS_START_TIMEOUT_MS"] ?? "") ?? 20_000)
var configuration = BerkeleyDBStorage.Configuration()
configuration.replication = replication
configuration.durability = .writeNoSync
configuration.cacheSize = 8 << 20
configuration.checkpointInterval = .milliseconds(500)
// Small log files (DURUS_SMALL_LOGS=1): a few hundred commits fill several,
// and checkpoints remove what recovery no longer needs.
if ProcessInfo.processInfo.environment["DURUS_SMALL_LOGS"] != nil {
    configuration.logBufferSize = 64 << 10
    configuration.logFileSize = 256 << 10
}

let storage: BerkeleyDBStorage
do {
    storage = try BerkeleyDBStorage(path: arguments[1], configuration: configuration)
} catch {
    say("error \(error)")
    exit(1)
}
say("ready \(storage.role.rawValue)")

func value(of record: Record) -> UInt64 {
    record.data.count == 8 ? record.data.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)) } : 0
}

func encode(_ n: UInt64) -> [UInt8] { withUnsafeBytes(of: n.bigEndian) { Array($0) } }

/// Root = n, referencing every child so far plus a new one holding n
/// (with `keep`, only the newest `keep` children: the others become garbage).
func write(_ n: UInt64, keep: Int? = nil) throws {
    if (try? storage.load(.root)) == nil {
        let root = try storage.newOID()
        precondition(root == .root)
        try storage.commit([Record(oid: .root, data: encode(0), references: [])])
    }
    let old = try storage.load(.root)
    let child = try storage.newOID()
    try storage.commit([
        Record(oid: .root, data: encode(n), references: (old.references + [child]).suffix(keep ?? .max)),
        Record(oid: child, data: encode(n), references: []),
    ])
}

while let line = readLine() {
    let words = line.split(separator: " ").map(String.init)
    guard let command = words.first else { continue }
    do {
        switch command {
        case "role":
            say("role \(storage.role.rawValue) \(storage.master.map { "\($0)" } ?? "-")")
        case "wait-role":
            let wanted = ReplicationRole(rawValue: words[1]) ?? .unknown
            do {
                try storage.waitForRole(wanted, timeout: .milliseconds(Int(words[2]) ?? 0))
                say("role \(wanted.rawValue)")
            } catch {
                say("timeout")
            }
        case "write":
            let n = UInt64(words[1]) ?? 0
            do {
                try write(n)
                say("ack \(n) \(storage.lastCommitToken.map { "\($0)" } ?? "-")")
            } catch DurusError.commitNotDurable {
                say("notdurable \(n)")
            }
        case "loop":
            var n = (try? storage.load(.root)).map(value(of:)) ?? 0
            while true {
                n += 1
                do {
                    try write(n)
                    say("ack \(n)")
                } catch DurusError.commitNotDurable {
                    say("notdurable \(n)")
                } catch {
                    say("error \(error)")
                    Thread.sleep(forTimeInterval: 0.05)
                    n -= 1
                }
            }
        case "burst":
            do {
                var n: UInt64 = 0
                do {
                    n = value(of: try storage.load(.root))
                } catch DurusError.keyNotFound {
                    n = 0
                }
                for _ in 0 ..< (Int(words[1]) ?? 0) {
                    n += 1
                    try write(n, keep: 50)
                }
                say("ack \(n) \(storage.lastCommitToken.map { "\($0)" } ?? "-")")
            } catch {
                say("error \(error)")
            }
        case "read":
            if let root = try? storage.load(.root) { say("root \(value(of: root))") } else { say("root -") }
        case "applied":
            guard let token = CommitToken(hex: words[1]) else { say("error bad token"); continue }
            do {
                try storage.waitUntilApplied(token, timeout: .milliseconds(Int(words[2]) ?? 0))
                say("applied")
            } catch ReplicationError.replicaBehind {
                say("behind")
            } catch ReplicationError.commitLost {
                say("lost")
            }
        case "digest":
            var count = 0
            var records: [OID: [UInt8]] = [:]
            try storage.forEachRecord { record in
                count += 1
                records[record.oid] = record.bytes
            }
            // FNV-1a over the records in OID order: the same on every site that holds the same records.
            var sum: UInt64 = 1469598103934665603
            for oid in records.keys.sorted() {
                for byte in records[oid]! { sum = (sum ^ UInt64(byte)) &* 1099511628211 }
            }
            say("digest \(count) \(sum)")
        case "sync":
            say("sync \(try storage.sync().count)")
        case "sequence":
            say("sequence \(storage.appliedSequence)")
        case "quit":
            try storage.close()
            say("bye")
            exit(0)
        default:
            say("error unknown command \(command)")
        }
    } catch {
        say("error \(error)")
    }
}
try? storage.close()

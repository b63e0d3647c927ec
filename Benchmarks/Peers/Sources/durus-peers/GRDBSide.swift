import Foundation
import GRDB

// GRDB.swift's side, written as a GRDB user would: a Codable record struct,
// a DatabasePool (WAL) with synchronous = NORMAL, one write transaction per
// batch or per read-modify-write, fetches by primary key.

/// A row of `item(id INTEGER PRIMARY KEY, name TEXT, value INTEGER, tags TEXT)`.
/// `tags` is stored as JSON text (`["t3","u5"]`): GRDB's Codable encoding of a
/// `[String]` property.
struct ItemRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "item"
    var id: Int64
    var name: String
    var value: Int
    var tags: [String]
}

func grdbConfiguration() -> Configuration {
    var configuration = Configuration()
    // WAL (a DatabasePool's mode) with synchronous = NORMAL: a commit survives
    // a process crash, not a power loss; the same promise as write-no-sync.
    configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
    return configuration
}

/// SQLite's version and the pool's journal mode and synchronous setting, to print.
func grdbSettings(path: String) throws -> String {
    let pool = try DatabasePool(path: path, configuration: grdbConfiguration())
    defer { try? pool.close() }
    return try pool.read { db in
        let version = try String.fetchOne(db, sql: "SELECT sqlite_version()") ?? "?"
        let journal = try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "?"
        let synchronous = try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
        return "SQLite \(version), journal_mode \(journal), synchronous \(synchronous) (1 = NORMAL)"
    }
}

/// Runs the four phases on a new SQLite file at `path`: rates by line name.
func runGRDB(path: String, _ work: Workload) throws -> [String: Double] {
    var random = BenchRandom(state: 7)
    var rates: [String: Double] = [:]

    do {
        let pool = try DatabasePool(path: path, configuration: grdbConfiguration())
        defer { try? pool.close() }
        try pool.write { db in
            try db.execute(sql: "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, value INTEGER, tags TEXT)")
        }

        // create: N items, one write transaction per `batch`.
        rates["create"] = try rate(1) { _ in
            for start in stride(from: 0, to: work.objects, by: work.batch) {
                try pool.write { db in
                    for number in start ..< min(work.objects, start + work.batch) {
                        try ItemRecord(id: Int64(number), name: "item-\(number)", value: number,
                                       tags: ["t\(number % 7)", "u\(number % 11)"]).insert(db)
                    }
                }
            }
        } * Double(work.objects)

        // rmw-commit: one write transaction each, fetch by key, value += 1, update.
        rates["rmw-commit"] = try rate(work.rmw) { _ in
            let id = Int64(Int.random(in: 0 ..< work.objects, using: &random))
            try pool.write { db in
                guard var item = try ItemRecord.fetchOne(db, key: id) else {
                    throw PeersError(description: "GRDB: no item \(id)")
                }
                item.value += 1
                try item.update(db)
            }
        }
    }

    // cold-read: a new DatabasePool on the file (the first one is closed),
    // fetches by primary key in one read transaction.
    let pool = try DatabasePool(path: path, configuration: grdbConfiguration())
    defer { try? pool.close() }
    var checksum = 0
    rates["cold-read"] = try pool.read { db in
        try rate(work.cold) { _ in
            let id = Int64(Int.random(in: 0 ..< work.objects, using: &random))
            guard let item = try ItemRecord.fetchOne(db, key: id) else {
                throw PeersError(description: "GRDB: no item \(id)")
            }
            checksum &+= item.value
        }
    }

    // warm-read: every item fetched once and kept in a dictionary by id, as a
    // GRDB user keeps the structs they fetched; then reads of `.value`.
    let items = try pool.read { db in try ItemRecord.fetchAll(db) }
    let byID = Dictionary(uniqueKeysWithValues: items.map { ($0.id, $0) })
    let total = items.reduce(0) { $0 + $1.value }
    guard items.count == work.objects, total == work.expectedTotal else {
        throw PeersError(description: "GRDB: \(items.count) items whose values sum to \(total), not \(work.expectedTotal)")
    }
    rates["warm-read"] = rate(work.warm) { _ in
        checksum &+= byID[Int64(Int.random(in: 0 ..< work.objects, using: &random))]?.value ?? 0
    }
    print("GRDB checksum \(checksum)")
    return rates
}

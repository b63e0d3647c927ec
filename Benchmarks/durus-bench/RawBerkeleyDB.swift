import CBerkeleyDB
import Durus
import Foundation

/// The baseline: a plain libdb loop with the same environment settings and
/// the same records, and nothing of ours in between. Its handles are opened
/// with `DB_THREAD`, so any thread may use them.
final class RawBerkeleyDB: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        var code: Int32
        var what: String
        var description: String { "raw libdb: \(what): \(String(cString: durus_strerror(code)))" }
    }

    let env: UnsafeMutablePointer<DB_ENV>
    let db: UnsafeMutablePointer<DB>
    let path: String

    init(path: String, cacheSize: Int) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        var e: UnsafeMutablePointer<DB_ENV>?
        try Self.check(durus_env_create(&e), "env create")
        env = e!
        try Self.check(durus_env_set_cachesize(env, 0, UInt32(cacheSize), 1), "cache size")
        try Self.check(durus_env_set_lk_max(env, 200_000, 200_000, 200_000), "lock tables")
        try Self.check(durus_env_set_lg_bsize(env, 1 << 20), "log buffer")
        try Self.check(durus_env_set_lg_max(env, 16 << 20), "log size")
        let flags = durus_DB_CREATE | durus_DB_INIT_TXN | durus_DB_INIT_LOCK | durus_DB_INIT_LOG | durus_DB_INIT_MPOOL
            | durus_DB_THREAD | durus_DB_RECOVER
        try Self.check(durus_env_open(env, path, flags, 0o644), "env open")
        var d: UnsafeMutablePointer<DB>?
        try Self.check(durus_db_create(&d, env), "db create")
        db = d!
        try Self.check(durus_db_open(db, nil, "records.db", durus_DB_BTREE,
                                     durus_DB_CREATE | durus_DB_AUTO_COMMIT | durus_DB_THREAD, 0o644), "db open")
    }

    static func check(_ code: Int32, _ what: String) throws {
        if code != 0 { throw Failure(code: code, what: what) }
    }

    func setDurability(_ mode: String) throws {
        try Self.check(durus_env_set_flags(env, durus_DB_TXN_NOSYNC, mode == "none" ? 1 : 0), "nosync")
        try Self.check(durus_env_set_flags(env, durus_DB_TXN_WRITE_NOSYNC, mode == "write-no-sync" ? 1 : 0), "write nosync")
    }

    /// Puts `records` in one transaction.
    func put(_ records: [Record]) throws {
        var txn: UnsafeMutablePointer<DB_TXN>?
        try Self.check(durus_txn_begin(env, &txn, 0), "txn begin")
        for record in records {
            var key = record.oid.rawValue.bigEndian
            let code = record.bytes.withUnsafeBytes { value in
                durus_db_put(db, txn, &key, 8, value.baseAddress, UInt32(value.count))
            }
            if code != 0 {
                _ = durus_txn_abort(txn)
                throw Failure(code: code, what: "put")
            }
        }
        try Self.check(durus_txn_commit(txn, 0), "txn commit")
    }

    /// Puts one value under an 8-byte key (a big-endian OID, as `put` keys
    /// records) in a transaction of its own, straight from the caller's bytes.
    func put(key: UnsafeRawPointer, value: UnsafeRawBufferPointer) throws {
        var txn: UnsafeMutablePointer<DB_TXN>?
        try Self.check(durus_txn_begin(env, &txn, 0), "txn begin")
        let code = durus_db_put(db, txn, key, 8, value.baseAddress, UInt32(value.count))
        if code != 0 {
            _ = durus_txn_abort(txn)
            throw Failure(code: code, what: "put")
        }
        try Self.check(durus_txn_commit(txn, 0), "txn commit")
    }

    /// Reads one record into a reused buffer and returns its length: what a C
    /// program tuned for reads would do.
    func get(_ oid: OID, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var key = oid.rawValue.bigEndian
        var length: UInt32 = 0
        try Self.check(durus_db_get_into(db, nil, &key, 8, buffer.baseAddress, UInt32(buffer.count), &length), "get")
        return Int(length)
    }

    func close() {
        _ = durus_db_close(db)
        _ = durus_env_close(env)
        try? FileManager.default.removeItem(atPath: path)
    }
}

import CBerkeleyDB
import Foundation

/// Direct libdb access for tests that must damage a store the way the engine never would.
enum RawBerkeleyDB {
    struct Failure: Error { var code: Int32 }

    /// Writes `format` into a closed store's `meta.db`, outside any environment.
    static func overwriteFormat(in path: String, with format: UInt64) throws {
        var db: UnsafeMutablePointer<DB>?
        guard durus_db_create(&db, nil) == 0, let db else { throw Failure(code: -1) }
        defer { _ = durus_db_close(db) }
        var code = durus_db_open(db, nil, path + "/meta.db", durus_DB_BTREE, 0, 0)
        guard code == 0 else { throw Failure(code: code) }
        let key = Array("format".utf8)
        let value = withUnsafeBytes(of: format.bigEndian) { Array($0) }
        code = durus_db_put(db, nil, key, UInt32(key.count), value, UInt32(value.count))
        guard code == 0 else { throw Failure(code: code) }
    }
}

import CBerkeleyDB
import Durus

typealias Txn = UnsafeMutablePointer<DB_TXN>

/// One Berkeley DB database (a table) of the store, keyed by bytes.
///
/// Handles are opened with `DB_THREAD`, so one `Table` serves every thread;
/// each call names the transaction it runs in.
final class Table: @unchecked Sendable {
    /// Replaced only by ``reopen(_:)`` (a replicated store's dead handle),
    /// while no other thread uses the table.
    var handle: UnsafeMutablePointer<DB>
    let name: String

    init(handle: UnsafeMutablePointer<DB>, name: String) {
        self.handle = handle
        self.name = name
    }

    /// The value under `key`, or nil.
    func get(_ key: UnsafeRawBufferPointer, txn: Txn?) throws -> [UInt8]? {
        var data: UnsafeMutableRawPointer?
        var length: UInt32 = 0
        let code = durus_db_get(handle, txn, key.baseAddress, UInt32(key.count), &data, &length)
        if code == durus_DB_NOTFOUND { return nil }
        try Engine.check(code, "get from \(name)")
        defer { free(data) }
        guard let data else { return [] }
        return Array(UnsafeRawBufferPointer(start: data, count: Int(length)))
    }

    func exists(_ key: UnsafeRawBufferPointer, txn: Txn?) throws -> Bool {
        let code = durus_db_exists(handle, txn, key.baseAddress, UInt32(key.count))
        if code == durus_DB_NOTFOUND { return false }
        try Engine.check(code, "look up in \(name)")
        return true
    }

    func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, txn: Txn?) throws {
        let code = durus_db_put(handle, txn, key.baseAddress, UInt32(key.count), value.baseAddress, UInt32(value.count))
        try Engine.check(code, "put into \(name)")
    }

    /// Deletes `key`; false when it was not there.
    func delete(_ key: UnsafeRawBufferPointer, txn: Txn?) throws -> Bool {
        let code = durus_db_del(handle, txn, key.baseAddress, UInt32(key.count))
        if code == durus_DB_NOTFOUND { return false }
        try Engine.check(code, "delete from \(name)")
        return true
    }

    /// Runs `body` with a cursor in `txn`, closed before it returns (a cursor
    /// must never outlive its transaction).
    func withCursor<T>(txn: Txn, _ body: (WriteCursor) throws -> T) throws -> T {
        var dbc: UnsafeMutablePointer<DBC>?
        try Engine.check(durus_cursor_open(handle, txn, &dbc, 0), "open a cursor on \(name)")
        defer { _ = durus_cursor_close(dbc) }
        return try body(WriteCursor(cursor: dbc!, table: self))
    }

    // MARK: typed keys and values (no allocation for the key)

    func get(_ oid: OID, txn: Txn?) throws -> [UInt8]? {
        try withKey(oid) { k in try get(k, txn: txn) }
    }
    func exists(_ oid: OID, txn: Txn?) throws -> Bool {
        try withKey(oid) { k in try exists(k, txn: txn) }
    }
    /// Adds `oid` (outside any transaction: temporary tables) unless it is
    /// there; true when it was added. One call where exists-then-put takes two.
    func insert(_ oid: OID) throws -> Bool {
        try withKey(oid) { k in
            let code = durus_db_put_new(handle, k.baseAddress, UInt32(k.count))
            if code == durus_DB_KEYEXIST { return false }
            try Engine.check(code, "put into \(name)")
            return true
        }
    }

    func put(_ oid: OID, _ value: [UInt8], txn: Txn?) throws {
        try withKey(oid) { k in
            try value.withUnsafeBytes { v in try put(k, v, txn: txn) }
        }
    }
    @discardableResult
    func delete(_ oid: OID, txn: Txn?) throws -> Bool {
        try withKey(oid) { k in try delete(k, txn: txn) }
    }

    /// The u64 under `oid`, or 0 when absent.
    func count(_ oid: OID, txn: Txn?) throws -> UInt64 {
        try countIfPresent(oid, txn: txn) ?? 0
    }
    /// The u64 under `oid`, or nil when absent.
    func countIfPresent(_ oid: OID, txn: Txn?) throws -> UInt64? {
        guard let bytes = try get(oid, txn: txn) else { return nil }
        return try decodeUInt64(bytes, key: "\(oid)")
    }
    func putCount(_ oid: OID, _ value: UInt64, txn: Txn?) throws {
        try withKey(oid) { k in
            try withUnsafeBytes(of: value.bigEndian) { v in try put(k, v, txn: txn) }
        }
    }

    /// The u64 under a named key, or 0 when absent (metadata).
    func uint64(_ name: String, txn: Txn?) throws -> UInt64 {
        guard let bytes = try Array(name.utf8).withUnsafeBytes({ k in try get(k, txn: txn) })
        else { return 0 }
        return try decodeUInt64(bytes, key: name)
    }
    func putUInt64(_ name: String, _ value: UInt64, txn: Txn?) throws {
        try Array(name.utf8).withUnsafeBytes { k in
            try withUnsafeBytes(of: value.bigEndian) { v in try put(k, v, txn: txn) }
        }
    }
    func string(_ name: String, txn: Txn?) throws -> String? {
        guard let bytes = try Array(name.utf8).withUnsafeBytes({ k in try get(k, txn: txn) })
        else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
    func putString(_ name: String, _ value: String, txn: Txn?) throws {
        try Array(name.utf8).withUnsafeBytes { k in
            try Array(value.utf8).withUnsafeBytes { v in try put(k, v, txn: txn) }
        }
    }

    /// A stored u64; a value of another length is damage, never a zero
    /// (a count read as 0 could get a live object collected).
    func decodeUInt64(_ bytes: [UInt8], key: String) throws -> UInt64 {
        guard bytes.count == 8 else {
            throw DurusError.corruptStore(path: name, reason: "the value under \(key) is \(bytes.count) bytes, not 8")
        }
        return bytes.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)) }
    }

    @inline(__always)
    private func withKey<T>(_ oid: OID, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        var raw = oid.rawValue.bigEndian
        return try withUnsafeBytes(of: &raw) { k in try body(k) }
    }

    /// Calls `body` with every key and value, read in bulk (many pairs per call
    /// into Berkeley DB). `body` returns false to stop early.
    func scan(txn: Txn?, bufferSize: Int = 1 << 20, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        var dbc: UnsafeMutablePointer<DBC>?
        try Engine.check(durus_cursor_open(handle, txn, &dbc, 0), "open a cursor on \(name)")
        defer { _ = durus_cursor_close(dbc) }
        var capacity = bufferSize
        var buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
        defer { buffer.deallocate() }
        var position = durus_DB_FIRST
        while true {
            var needed: UInt32 = 0
            let code = durus_cursor_get_bulk(dbc, position, buffer, UInt32(capacity), &needed)
            if code == durus_DB_NOTFOUND { return }
            if code == durus_DB_BUFFER_SMALL {
                // One pair is larger than the buffer: grow it and read again from
                // here. Bulk buffers must be a multiple of 1 KiB.
                let wanted = (max(2 * capacity, Int(needed) + 4096) + 1023) & ~1023
                guard wanted <= Int(UInt32.max & ~1023) else {
                    throw BerkeleyDBError(code: code, operation: "scan \(name)", message: "a record of \(needed) bytes is too large to read")
                }
                buffer.deallocate()
                capacity = wanted
                buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
                continue
            }
            try Engine.check(code, "scan \(name)")
            position = durus_DB_NEXT
            var state: UnsafeMutableRawPointer?
            var key: UnsafeMutableRawPointer?
            var data: UnsafeMutableRawPointer?
            var klen: UInt32 = 0
            var dlen: UInt32 = 0
            while durus_bulk_next(buffer, UInt32(capacity), &state, &key, &klen, &data, &dlen) == 0 {
                let k = UnsafeRawBufferPointer(start: key, count: Int(klen))
                let d = UnsafeRawBufferPointer(start: data, count: Int(dlen))
                if try !body(k, d) { return }
            }
        }
    }

    /// Up to `limit` OID keys from the start of the table.
    func firstOIDs(limit: Int, txn: Txn?) throws -> [OID] {
        var oids: [OID] = []
        try scan(txn: txn, bufferSize: 64 << 10) { key, _ in
            if let oid = OID(bytes: key) { oids.append(oid) }
            return oids.count < limit
        }
        return oids
    }

    func close() {
        _ = durus_db_close(handle)
    }
}


/// A cursor for read-then-replace: one search finds the old value and the
/// replacement is written where it stands.
struct WriteCursor {
    let cursor: UnsafeMutablePointer<DBC>
    let table: Table

    /// Positions on `oid` and reads its value into `buffer` (grown when too
    /// small); nil when absent.
    func find(_ oid: OID, into buffer: inout UnsafeMutableRawBufferPointer) throws -> Int? {
        var raw = oid.rawValue.bigEndian
        return try readGrowing(into: &buffer, from: table.name) { base, capacity, length in
            durus_cursor_find_into(cursor, &raw, 8, base, capacity, &length)
        }
    }

    /// Replaces the value at the position `find` found.
    func replace(with bytes: [UInt8]) throws {
        let code = bytes.withUnsafeBytes { durus_cursor_put_current(cursor, $0.baseAddress, UInt32($0.count)) }
        try Engine.check(code, "put into \(table.name)")
    }
}

// MARK: for migrating

extension Table {
    /// Puts `value` under `oid` in `txn` unless the key is there; true when
    /// it was added.
    func insert(_ oid: OID, _ value: [UInt8], txn: Txn) throws -> Bool {
        var raw = oid.rawValue.bigEndian
        let code = value.withUnsafeBytes { v in
            durus_db_put_new_in(handle, txn, &raw, 8, v.baseAddress, UInt32(v.count))
        }
        if code == durus_DB_KEYEXIST { return false }
        try Engine.check(code, "put into \(name)")
        return true
    }

    /// Puts the count `value` under `oid` unless a count is there; true when it was added.
    func insertCount(_ oid: OID, _ value: UInt64, txn: Txn) throws -> Bool {
        var raw = oid.rawValue.bigEndian
        var count = value.bigEndian
        let code = durus_db_put_new_in(handle, txn, &raw, 8, &count, 8)
        if code == durus_DB_KEYEXIST { return false }
        try Engine.check(code, "put into \(name)")
        return true
    }

    /// Adds one to the count under `oid` (1 when absent); true when it was
    /// absent. One call for a first count, where get-then-put takes two.
    func countUp(_ oid: OID, txn: Txn) throws -> Bool {
        var raw = oid.rawValue.bigEndian
        var one = UInt64(1).bigEndian
        let code = durus_db_put_new_in(handle, txn, &raw, 8, &one, 8)
        if code == durus_DB_KEYEXIST {
            try putCount(oid, try count(oid, txn: txn) + 1, txn: txn)
            return false
        }
        try Engine.check(code, "put into \(name)")
        return true
    }

    /// Reads the value under `oid` into `buffer` (grown when too small);
    /// its length, or nil when absent. No allocation per read.
    func read(_ oid: OID, into buffer: inout UnsafeMutableRawBufferPointer, txn: Txn?) throws -> Int? {
        var raw = oid.rawValue.bigEndian
        return try readGrowing(into: &buffer, from: name) { base, capacity, length in
            durus_db_get_into(handle, txn, &raw, 8, base, capacity, &length)
        }
    }

    /// Writes the table's dirty pages and flushes its file to disk.
    func sync() throws {
        try Engine.check(durus_db_sync(handle), "write \(name) to disk")
    }

    /// Removes every key, in `txn`.
    func truncate(txn: Txn) throws {
        try Engine.check(durus_db_truncate(handle, txn), "empty \(name)")
    }
}

extension WriteCursor {
    /// Moves to the first OID key at or after `oid`, or (nil) to the next
    /// key; nil at the end. Reads no value.
    func key(atOrAfter oid: OID? = nil) throws -> OID? {
        try moveToKey(oid == nil ? durus_DB_NEXT : durus_DB_SET_RANGE, from: oid)
    }

    /// The highest OID key; nil for an empty table.
    func lastKey() throws -> OID? { try moveToKey(durus_DB_LAST, from: nil) }

    private func moveToKey(_ position: UInt32, from oid: OID?) throws -> OID? {
        var raw = (oid?.rawValue ?? 0).bigEndian
        var length: UInt32 = 8
        let code = durus_cursor_key(cursor, position, &raw, 8, &length)
        if code == durus_DB_NOTFOUND { return nil }
        try Engine.check(code, "read a key of \(table.name)")
        guard length == 8 else {
            throw DurusError.corruptStore(path: table.name, reason: "a key of \(length) bytes, not an OID")
        }
        return OID(UInt64(bigEndian: raw))
    }

    /// Deletes the pair under the cursor.
    func deleteCurrent() throws {
        try Engine.check(durus_cursor_del(cursor), "delete from \(table.name)")
    }
}

/// Runs `get` (a Berkeley DB read into `buffer`, reporting the value's
/// length) until the buffer is big enough, growing it; the length, or nil
/// when the key is absent.
private func readGrowing(into buffer: inout UnsafeMutableRawBufferPointer, from table: String,
                         _ get: (UnsafeMutableRawPointer?, UInt32, inout UInt32) -> Int32) throws -> Int? {
    while true {
        var length: UInt32 = 0
        let code = get(buffer.baseAddress, UInt32(buffer.count), &length)
        if code == durus_DB_NOTFOUND { return nil }
        if code == durus_DB_BUFFER_SMALL {
            buffer.deallocate()
            buffer = .allocate(byteCount: Int(length) * 2, alignment: 8)
            continue
        }
        try Engine.check(code, "get from \(table)")
        return Int(length)
    }
}

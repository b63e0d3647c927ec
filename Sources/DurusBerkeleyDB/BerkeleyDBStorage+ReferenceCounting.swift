import CBerkeleyDB
import Durus

extension BerkeleyDBStorage {
    /// Stores `batch` and adjusts reference counts inside `txn`; returns the
    /// new counters. Throws a write conflict for references to missing objects.
    /// `fresh`: OIDs of the batch that were handed out and never stored
    /// (see ``OIDAllocator/fresh``); each is still checked by the insertion
    /// itself, which refuses a key that is there.
    func applyCommit(_ batch: [Record], fresh given: Set<OID>, counters: Counters, txn: Txn) throws -> Counters {
        var fresh = given
        var storing: [OID: Record] = [:]
        storing.reserveCapacity(batch.count)
        for record in batch { storing[record.oid] = record }
        var deltas: [OID: Int] = [:]
        var candidates: [OID] = []
        /// Stored by this commit where no record was: its count so far is its row's, or 0.
        var new: Set<OID> = []
        var result = counters
        let omits = counters.omitsCountOfOne
        func added(_ record: Record) {
            for ref in record.referenceSet { deltas[ref, default: 0] += 1 }
            candidates.append(record.oid)
            if !fresh.contains(record.oid) { new.insert(record.oid) }
            result.objects += 1
            result.bytes += UInt64(record.bytes.count)
        }
        // Records are written as they are read; a conflict found below
        // aborts the transaction, so nothing of a refused commit remains.
        // In OID order: new objects' OIDs ascend, so their records append at
        // the B-tree's right edge (Berkeley DB then splits without leaving
        // half-empty pages) and rewrites walk the pages in order.
        try records.withCursor(txn: txn) { cursor in
            for record in storing.values.sorted(by: { $0.oid < $1.oid }) {
                if fresh.contains(record.oid) {
                    if try records.insert(record.oid, record.bytes, txn: txn) {
                        added(record)
                        continue
                    }
                    fresh.remove(record.oid)
                }
                guard let oldLength = try cursor.find(record.oid, into: &scratch) else {
                    try records.put(record.oid, record.bytes, txn: txn)
                    added(record)
                    continue
                }
                result.bytes = (result.bytes &+ UInt64(record.bytes.count)) &- UInt64(oldLength)
                let old = UnsafeRawBufferPointer(rebasing: scratch[..<oldLength])
                // The common rewrite: same references, nothing to count.
                if !Self.sameReferences(record, old) {
                    let oldRefs = try Record(bytes: Array(old)).referenceSet
                    let newRefs = record.referenceSet
                    for ref in newRefs where !oldRefs.contains(ref) { deltas[ref, default: 0] += 1 }
                    for ref in oldRefs where !newRefs.contains(ref) { deltas[ref, default: 0] -= 1 }
                }
                try cursor.replace(with: record.bytes)
            }
        }
        var missing: [OID] = []
        for (ref, delta) in deltas where delta > 0 && storing[ref] == nil {
            if try !records.exists(ref, txn: txn) { missing.append(ref) }
        }
        if !missing.isEmpty { throw ConflictError(.write, oids: missing.sorted()) }
        var counted: [OID: UInt64] = [:]
        for (ref, delta) in deltas.sorted(by: { $0.key < $1.key }) where delta != 0 {
            // A fresh object was never referenced, and has no row: referenced
            // once, it needs none (format 2); else its first count.
            if fresh.contains(ref), delta > 0 {
                counted[ref] = UInt64(delta)
                if delta != 1 || !omits || ref == .root { try refcounts.putCount(ref, UInt64(delta), txn: txn) }
                continue
            }
            let old = try new.contains(ref) ? refcounts.count(ref, txn: txn) : storedCount(ref, omitsCountOfOne: omits, txn: txn)
            guard let oldCount = Int64(exactly: old), case let count = oldCount + Int64(delta), count >= 0 else {
                throw DurusError.corruptStore(path: path, reason: "reference count of \(ref) would go below zero")
            }
            counted[ref] = UInt64(count)
            // A reference added is to a record stored (checked above, or in this commit).
            try storeCount(ref, UInt64(count), omitsCountOfOne: omits, recordExists: delta > 0 || storing[ref] != nil ? true : nil, txn: txn)
            if count == 0 {
                candidates.append(ref)
            } else if old == 0 {
                try garbage.delete(ref, txn: txn)
            }
        }
        for oid in candidates where oid != .root {
            if let count = counted[oid] {
                guard count == 0 else { continue }
            } else if fresh.contains(oid) || new.contains(oid) {
                // Stored, and referenced by nothing: its count is 0, which
                // (in format 2) takes a row.
                guard try refcounts.count(oid, txn: txn) == 0 else { continue }
                try storeCount(oid, 0, omitsCountOfOne: omits, recordExists: true, txn: txn)
            } else {
                guard try storedCount(oid, omitsCountOfOne: omits, txn: txn) == 0 else { continue }
            }
            try garbage.put(oid, [], txn: txn)
            result.garbageQueued = true
        }
        if result.objects != counters.objects || result.bytes != counters.bytes { try writeCounters(result, txn: txn) }
        return result
    }

    /// The reference count of `oid`, a stored object: its row's, or, without
    /// one, 1 (format 2) or 0 (format 1, and the root).
    func storedCount(_ oid: OID, omitsCountOfOne: Bool, txn: Txn) throws -> UInt64 {
        try refcounts.countIfPresent(oid, txn: txn) ?? Self.impliedCount(oid, omitsCountOfOne)
    }

    /// Stores `count` as the reference count of `oid`: as no row when it is
    /// the count that a stored object without a row has. An OID without a
    /// record (deleted by a cycle collection while doomed objects still
    /// reference it) keeps any count but 0 as a row: a record stored under
    /// it later counts from there. `recordExists`: whether the caller knows
    /// (nil: it is looked up when it matters).
    func storeCount(_ oid: OID, _ count: UInt64, omitsCountOfOne: Bool, recordExists: Bool? = nil, txn: Txn) throws {
        let implied = count == Self.impliedCount(oid, omitsCountOfOne)
        if try implied && (count == 0 || recordExists ?? records.exists(oid, txn: txn)) {
            try refcounts.delete(oid, txn: txn)
        } else {
            try refcounts.putCount(oid, count, txn: txn)
        }
    }

    /// The count of a stored object that has no count row.
    static func impliedCount(_ oid: OID, _ omitsCountOfOne: Bool) -> UInt64 {
        omitsCountOfOne && oid != .root ? 1 : 0
    }

    /// Brings a store of format 1 (an object without a count row had no
    /// referrer) to format 2 (it has one): each queued garbage object, which
    /// has no row, gets a row of 0, in bounded transactions; then the format
    /// is written. A crash part way leaves rows that both formats read alike,
    /// and the next open goes on. Call with `writer` held.
    func upgradeCounts(_ counters: inout Counters) throws {
        var next: OID? = OID(0)
        while let start = next {
            next = try writeTransaction(flags: durus_DB_TXN_NOSYNC) { txn in
                try garbage.withCursor(txn: txn) { cursor in
                    var oid = try cursor.key(atOrAfter: start)
                    for _ in 0 ..< max(1, configuration.collectionBatchSize) {
                        guard let current = oid else { return nil }
                        if current != .root, try refcounts.countIfPresent(current, txn: txn) == nil {
                            try refcounts.putCount(current, 0, txn: txn)
                        }
                        oid = try cursor.key()
                    }
                    return oid
                }
            }
        }
        try writeTransaction { txn in try meta.putUInt64("format", UInt64(Self.formatVersion), txn: txn) }
        counters.omitsCountOfOne = true
    }

    /// Whether the encoded record `old` lists exactly the references of `record`.
    private static func sameReferences(_ record: Record, _ old: UnsafeRawBufferPointer) -> Bool {
        guard old.count >= 12 else { return false }
        let start = 12 + Int(UInt32(bigEndian: old.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        guard start <= old.count else { return false }
        let refs = record.referenceBytes
        guard refs.count == old.count - start else { return false }
        return refs.elementsEqual(old[start...])
    }

    func writeCounters(_ counters: Counters, txn: Txn) throws {
        try meta.putUInt64("objects", counters.objects, txn: txn)
        try meta.putUInt64("bytes", counters.bytes, txn: txn)
    }
}

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
        var result = counters
        func added(_ record: Record) {
            for ref in record.referenceSet { deltas[ref, default: 0] += 1 }
            candidates.append(record.oid)
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
            // A fresh object was never referenced: its first count, unless
            // (against every rule) one is there, which then counts as usual.
            if fresh.contains(ref), delta > 0, try refcounts.insertCount(ref, UInt64(delta), txn: txn) {
                counted[ref] = UInt64(delta)
                continue
            }
            let old = try refcounts.count(ref, txn: txn)
            guard let oldCount = Int64(exactly: old), case let new = oldCount + Int64(delta), new >= 0 else {
                throw DurusError.corruptStore(path: path, reason: "reference count of \(ref) would go below zero")
            }
            counted[ref] = UInt64(new)
            if new == 0 {
                try refcounts.delete(ref, txn: txn)
                candidates.append(ref)
            } else {
                try refcounts.putCount(ref, UInt64(new), txn: txn)
                if old == 0 { try garbage.delete(ref, txn: txn) }
            }
        }
        for oid in candidates where oid != .root {
            if try counted[oid] ?? (fresh.contains(oid) ? 0 : refcounts.count(oid, txn: txn)) == 0 {
                try garbage.put(oid, [], txn: txn)
                result.garbageQueued = true
            }
        }
        if result.objects != counters.objects || result.bytes != counters.bytes { try writeCounters(result, txn: txn) }
        return result
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

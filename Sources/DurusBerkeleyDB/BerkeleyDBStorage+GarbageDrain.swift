import CBerkeleyDB
import Durus
import Foundation

extension BerkeleyDBStorage {
    /// Keeps the failure of a collection that ran apart from any call (in
    /// the background, or after a commit) for ``lastCollectionError``.
    func noteCollectionFailure(_ error: any Error) {
        collectionError.withLock { $0 = CollectionFailure(description: "\(error)") }
    }

    /// Collects after a commit that has already been applied: a failure here
    /// must not make the commit look failed, so it is kept for
    /// ``lastCollectionError`` and the queue waits for the next try.
    func collectGarbageAfterCommit(_ counters: inout Counters) {
        do {
            try collectGarbage(&counters)
            collectionError.withLock { $0 = nil }
        } catch {
            collectionError.withLock { $0 = CollectionFailure(description: "\(error)") }
        }
    }

    /// Drains the garbage queue in transactions of at most
    /// ``Configuration/collectionBatchSize`` objects each, cascading to the
    /// objects that the collected ones referenced. Each batch is atomic and
    /// the queue entries it removes are removed with the objects, so a crash
    /// anywhere leaves work that the next drain completes.
    func collectGarbage(_ counters: inout Counters) throws {
        guard counters.garbageQueued else { return }
        while try !collectBatch(&counters) {}
    }

    /// Collects one batch from the queue; true when it found the queue empty.
    /// The batch that ends a drain which deleted anything records the
    /// drain in `meta.db` (for ``lastGarbageCollection()``) in that same
    /// transaction, and reports it to ``Configuration/onCollection``.
    func collectBatch(_ counters: inout Counters) throws -> Bool {
        let batchSize = max(1, configuration.collectionBatchSize)
        let clock = ContinuousClock()
        let batchStart = clock.now
        var freed: [OID] = []
        var queueEmpty = false
        var finished: GarbageCollectionReport?
        let before = counters
        counters = try writeTransaction(flags: durus_DB_TXN_NOSYNC) { txn in
            freed = []
            finished = nil
            var result = before
            let batch = try garbage.firstOIDs(limit: batchSize, txn: txn)
            queueEmpty = batch.isEmpty
            for oid in batch {
                try garbage.delete(oid, txn: txn)
                guard oid != .root, try storedCount(oid, omitsCountOfOne: before.omitsCountOfOne, txn: txn) == 0 else { continue }
                guard let bytes = try records.get(oid, txn: txn) else {
                    // Queued without a record (a damaged store's dangling reference): no count either.
                    try refcounts.delete(oid, txn: txn)
                    continue
                }
                try deleteObject(oid, bytes, count: 0, counters: &result, txn: txn)
                freed.append(oid)
            }
            if result.objects != before.objects { try writeCounters(result, txn: txn) }
            try appendCommitLog(freed, &result, txn: txn)
            if queueEmpty, let drain = before.drain, drain.collected > 0 {
                finished = GarbageCollectionReport(collected: drain.collected, duration: clock.now - drain.start, finished: Date())
                try writeLastCollection(finished!, txn: txn)
            }
            return result
        }
        collected.withLock { $0.append(contentsOf: freed) }
        noteCommitLogWritten(counters)
        if !freed.isEmpty {
            counters.drain = (counters.drain?.start ?? batchStart, (counters.drain?.collected ?? 0) + freed.count)
        }
        if queueEmpty {
            counters.garbageQueued = false
            counters.drain = nil
            if let finished { configuration.onCollection?(.garbage(finished)) }
        }
        return queueEmpty
    }

    /// Deletes a garbage object's record and counts down what it referenced;
    /// those left unreferenced join the queue. A damaged record cannot say
    /// what it referenced: those counts stay high, which can only leak, never delete.
    /// `count`: the object's reference count, when the caller has read it.
    func deleteObject(_ oid: OID, _ bytes: [UInt8], count: UInt64? = nil, counters: inout Counters, txn: Txn) throws {
        _ = try records.delete(oid, txn: txn)
        // A cycle collection deletes objects that other doomed objects, not
        // yet swept, still reference: their count stays, as a row (a record
        // stored under this OID meanwhile is counted with them, and their
        // sweep counts it down). A drained object's count is 0: no row.
        let remaining = try count ?? storedCount(oid, omitsCountOfOne: counters.omitsCountOfOne, txn: txn)
        if remaining == 0 {
            _ = try refcounts.delete(oid, txn: txn)
        } else {
            try refcounts.putCount(oid, remaining, txn: txn)
        }
        counters.objects = counters.objects > 0 ? counters.objects - 1 : 0
        counters.bytes = counters.bytes >= UInt64(bytes.count) ? counters.bytes - UInt64(bytes.count) : 0
        guard let record = try? Record(bytes: bytes) else { return }
        let omits = counters.omitsCountOfOne
        for ref in record.referenceSet {
            let count = try storedCount(ref, omitsCountOfOne: omits, txn: txn)
            try storeCount(ref, count > 1 ? count - 1 : 0, omitsCountOfOne: omits, txn: txn)
            if count <= 1, ref != .root {
                try garbage.put(ref, [], txn: txn)
                counters.garbageQueued = true
            }
        }
    }
}

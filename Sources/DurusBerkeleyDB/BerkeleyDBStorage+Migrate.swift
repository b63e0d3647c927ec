import CBerkeleyDB
import Durus

extension BerkeleyDBStorage {
    /// How far a ``migrate(from:batchSize:progress:)`` has got.
    public struct MigrationProgress: Sendable {
        /// The passes, in order.
        public enum Phase: String, Sendable {
            /// Records are copied from the source in batches.
            case copying
            /// Everything reachable from the root is marked.
            case marking
            /// Unreachable records are removed and reference counts rebuilt.
            case counting
            /// The store is ready.
            case done
        }

        public var phase: Phase
        /// Records handled so far in this phase.
        public var records: Int
        /// Bytes of those records.
        public var bytes: Int
    }

    /// Brings every current record of `source` into this store, which must be
    /// new (empty) or one that an interrupted migration left behind: running
    /// it again starts over and finishes correctly.
    ///
    /// Memory stays flat however many objects the source holds: records go in
    /// by batches of `batchSize` in their own transactions (a later record for
    /// an OID simply overrides an earlier one, so a file's sequential scan
    /// needs no index), the marks from the root live in a temporary Berkeley
    /// DB table, and the reference counts are rebuilt by one streaming pass.
    /// Afterwards every record reachable from the root is byte-identical under
    /// its OID, unreachable ones (cycles included) are gone, new OIDs continue
    /// above the source's highest, and ``verify()`` is clean.
    ///
    /// ```swift
    /// let store = try BerkeleyDBStorage(path: "new-store")
    /// try store.migrate(from: ClientStorage(address: .standard)) { print($0.phase, $0.records) }
    /// ```
    ///
    /// - Throws: ``Durus/DurusError/io(path:message:)`` when the store already
    ///   holds objects of its own; whatever the source throws while reading.
    public func migrate(from source: any Storage, batchSize: Int = 5_000,
                        progress: (MigrationProgress) -> Void = { _ in }) throws {
        try reading { () throws in
            guard !configuration.readOnly else { throw DurusError.readOnly }
            try writer.withLock { counters in
                let marker = try meta.string("migration", txn: nil)
                guard marker != nil || counters.objects == 0 else {
                    throw DurusError.io(path: path, message: "holds \(counters.objects) objects: migrate into a new store")
                }
                try writeTransaction { txn in try meta.putString("migration", "running", txn: txn) }
                if marker != nil { try clearDerivedTables() }
                let highest = try copy(from: source, batchSize: max(1, batchSize), progress: progress)
                let marks = try temporaryTable("migrate-marks")
                defer { marks.close() }
                try markReachable(marks, progress: progress)
                counters = try sweepAndCount(marks: marks, batchSize: max(1, batchSize), progress: progress)
                try oids.withLock { allocator in
                    let next = max(allocator.next, highest.map { $0.rawValue + 1 } ?? 0)
                    try writeTransaction { txn in
                        try meta.putUInt64("next-oid", next, txn: txn)
                        try writeCounters(counters, txn: txn)
                        _ = try Array("migration".utf8).withUnsafeBytes { key in try meta.delete(key, txn: txn) }
                    }
                    allocator = OIDAllocator(next: next, reserved: next)
                }
                try Engine.check(durus_env_txn_checkpoint(env, 0, 0), "checkpoint")
                progress(MigrationProgress(phase: .done, records: Int(counters.objects), bytes: Int(counters.bytes)))
            }
        }
    }

    /// An interrupted run may have left counts and queue entries: drop them
    /// (the records are simply put again).
    private func clearDerivedTables() throws {
        for table in [refcounts, garbage] {
            while true {
                let batch = try table.firstOIDs(limit: 10_000, txn: nil)
                if batch.isEmpty { break }
                try writeTransaction(flags: durus_DB_TXN_NOSYNC) { txn in
                    for oid in batch { _ = try table.delete(oid, txn: txn) }
                }
            }
        }
    }

    private func copy(from source: any Storage, batchSize: Int, progress: (MigrationProgress) -> Void) throws -> OID? {
        var batch: [Record] = []
        batch.reserveCapacity(batchSize)
        var highest: OID?
        var copied = MigrationProgress(phase: .copying, records: 0, bytes: 0)
        func flush() throws {
            guard !batch.isEmpty else { return }
            try writeTransaction(flags: durus_DB_TXN_NOSYNC) { txn in
                for record in batch { try records.put(record.oid, record.bytes, txn: txn) }
            }
            try keepCacheClean()
            copied.records += batch.count
            copied.bytes += batch.reduce(0) { $0 + $1.bytes.count }
            batch.removeAll(keepingCapacity: true)
            progress(copied)
        }
        try source.forEachRecord { record in
            highest = max(highest ?? record.oid, record.oid)
            batch.append(record)
            if batch.count >= batchSize { try flush() }
        }
        try flush()
        return highest
    }

    /// Marks the root and everything it reaches.
    private func markReachable(_ marks: Table, progress: (MigrationProgress) -> Void) throws {
        guard try records.exists(.root, txn: nil) else { return }
        let frontier = try temporaryTable("migrate-frontier")
        defer { frontier.close() }
        let marked = try markFrom([.root], marks: marks, frontier: frontier, txn: nil)
        try keepCacheClean()
        progress(MigrationProgress(phase: .marking, records: marked, bytes: 0))
    }

    /// Writes dirty pages out until a fifth of the cache is clean. The
    /// background checkpoint that does this waits for the writer's lock,
    /// which a migration holds throughout; without it a store bigger than
    /// the cache fills it with dirty pages, and every page read then
    /// searches the whole cache for one it may evict.
    private func keepCacheClean() throws {
        try Engine.check(durus_env_memp_trickle(env, 20), "write dirty pages")
    }

    /// Deletes every unmarked record and counts the references of the marked
    /// ones, in one pass over a snapshot (which takes no locks, so the batches
    /// written meanwhile never wait for it); returns the new counters.
    private func sweepAndCount(marks: Table, batchSize: Int, progress: (MigrationProgress) -> Void) throws -> Counters {
        var counters = Counters(objects: 0, bytes: 0, garbageQueued: false)
        var counted = MigrationProgress(phase: .counting, records: 0, bytes: 0)
        var batch: [(OID, [UInt8])] = []
        func flush() throws {
            guard !batch.isEmpty else { return }
            try writeTransaction(flags: durus_DB_TXN_NOSYNC) { txn in
                for (oid, bytes) in batch {
                    guard try marks.exists(oid, txn: nil) else {
                        _ = try records.delete(oid, txn: txn)
                        continue
                    }
                    guard let record = try? Record(bytes: bytes) else { continue }
                    for ref in record.referenceSet where try marks.exists(ref, txn: nil) {
                        try refcounts.putCount(ref, try refcounts.count(ref, txn: txn) + 1, txn: txn)
                    }
                }
            }
            for (oid, bytes) in batch where try marks.exists(oid, txn: nil) {
                counters.objects += 1
                counters.bytes += UInt64(bytes.count)
            }
            try keepCacheClean()
            counted.records += batch.count
            counted.bytes += batch.reduce(0) { $0 + $1.1.count }
            batch.removeAll(keepingCapacity: true)
            progress(counted)
        }
        try snapshot { txn in
            try records.scan(txn: txn) { key, value in
                guard let oid = OID(bytes: key) else { return true }
                batch.append((oid, Array(value)))
                if batch.count >= batchSize { try flush() }
                return true
            }
        }
        try flush()
        return counters
    }
}

import CBerkeleyDB
import Durus

extension BerkeleyDBStorage {
    /// How far a ``migrate(from:batchSize:progress:)`` has got.
    public struct MigrationProgress: Sendable {
        /// The passes, in order.
        public enum Phase: String, Sendable {
            /// Records are copied from the source in batches.
            case copying
            /// Everything reachable from the root is visited once, its
            /// references counted and the objects and bytes summed.
            case marking
            /// Unreachable records are removed: one pass over the store, which
            /// ends at once when every record copied was reachable.
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

    /// The objects stored (``objectCount``): what a migration from this
    /// store copies.
    public var estimatedRecordCount: Int? { objectCount }

    /// Brings every current record of `source` into this store, which must be
    /// new (empty) or one that an interrupted migration left behind: running
    /// it again starts over and finishes correctly.
    ///
    /// Memory stays flat however many objects the source holds: records go in
    /// by batches of `batchSize` in their own transactions (a later record for
    /// an OID simply overrides an earlier one, so a file's sequential scan
    /// needs no index); then one walk from the root visits each reachable
    /// record once and counts its references straight into the reference
    /// counts (an OID's first count is its mark), smallest OID first, the
    /// order Python Durus's pack writes a file in, so the walk reads the
    /// store nearly front to back; the OIDs waiting for a visit spill into a
    /// temporary table past a bound. Records nothing counted are deleted by a
    /// last pass, skipped when the walk found as many records as were copied.
    /// Afterwards every record reachable from the root is byte-identical under
    /// its OID, unreachable ones (cycles included) are gone, new OIDs continue
    /// above the source's highest, and ``verify()`` is clean.
    ///
    /// Open the store with ``Configuration/migration``, as `durus migrate`
    /// does: Berkeley DB's cache is most of the memory a migration takes, and
    /// that configuration sizes it for a migration's access pattern, whatever
    /// the size of the source; its tables are written without a log, and a
    /// crash midway is mended by opening the same way and migrating again
    /// (ordinary opens refuse the store until then).
    ///
    /// ```swift
    /// let store = try BerkeleyDBStorage(path: "new-store", configuration: .migration)
    /// try store.migrate(from: ClientStorage(address: .standard)) { print($0.phase, $0.records) }
    /// ```
    ///
    /// - Throws: `DurusError.io(path:message:)` when the store already
    ///   holds objects of its own; `DurusError.diskFull(path:message:)`
    ///   when the store's disk fills up (free space and migrate again);
    ///   whatever the source throws while reading.
    public func migrate(from source: any MigrationSource, batchSize: Int = 5_000,
                        progress: (MigrationProgress) -> Void = { _ in }) throws {
        do {
            try migrateRecords(from: source, batchSize: batchSize, progress: progress)
        } catch {
            throw outOfSpace(error)
        }
    }

    private func migrateRecords(from source: any MigrationSource, batchSize: Int,
                                progress: (MigrationProgress) -> Void) throws {
        try reading { () throws in
            guard !configuration.readOnly else { throw DurusError.readOnly }
            try writer.withLock { counters in
                let marker = try meta.string("migration", txn: nil)
                guard marker != nil || counters.objects == 0 else {
                    throw DurusError.io(path: path, message: "holds \(counters.objects) objects: migrate into a new store")
                }
                // The mark is on disk before any page of an unlogged table is.
                try writeTransaction(flags: durus_DB_TXN_SYNC, retries: 0) { txn in
                    try meta.putString("migration", "running", txn: txn)
                    // A rerun starts from empty tables, so the copy's count of
                    // distinct records is exact (after a crash, a
                    // migration-only open has made them afresh already).
                    if marker != nil { for table in [records, refcounts, garbage] { try table.truncate(txn: txn) } }
                }
                let batchSize = max(1, batchSize)
                let (highest, distinct) = try copy(from: source, batchSize: batchSize, progress: progress)
                counters = try markAndCount(batchSize: batchSize, progress: progress)
                progress(MigrationProgress(phase: .counting, records: 0, bytes: 0))
                if counters.objects != distinct { try sweep(batchSize: batchSize, progress: progress) }
                // New OIDs start above every record and every reference: an
                // OID a dangling reference names, handed out, would make that
                // reference point at an unrelated new object.
                let highestReferenced = try migrationTransaction { txn in try refcounts.withCursor(txn: txn) { try $0.lastKey() } }
                // Unlogged tables are on disk in full before the mark goes.
                if configuration.migrationOnly {
                    for table in [records, refcounts, garbage] { try table.sync() }
                }
                try oids.withLock { allocator in
                    let next = max(allocator.next, highest.map { $0.rawValue + 1 } ?? 0, highestReferenced.map { $0.rawValue + 1 } ?? 0)
                    try writeTransaction(flags: durus_DB_TXN_SYNC) { txn in
                        try meta.putUInt64("next-oid", next, txn: txn)
                        try writeCounters(counters, txn: txn)
                        _ = try Array("migration".utf8).withUnsafeBytes { key in try meta.delete(key, txn: txn) }
                    }
                    allocator = OIDAllocator(next: next, reserved: next)
                }
                try Engine.check(durus_env_txn_checkpoint(env, 0, 0), "checkpoint")
                // The copy's log is no longer needed: the new store starts without it.
                try removeUnusedLogs()
                progress(MigrationProgress(phase: .done, records: Int(counters.objects), bytes: Int(counters.bytes)))
            }
        }
    }

    /// Runs `body` in a transaction committed without a log flush, never
    /// retried (its effects outside the store, on counts and the frontier,
    /// would happen twice): a failure leaves the migration to be run again.
    private func migrationTransaction<T>(_ body: (Txn) throws -> T) throws -> T {
        try writeTransaction(flags: durus_DB_TXN_NOSYNC, retries: 0, body)
    }

    /// Copies every record; returns the highest OID and how many distinct
    /// OIDs the store holds now.
    private func copy(from source: any MigrationSource, batchSize: Int,
                      progress: (MigrationProgress) -> Void) throws -> (highest: OID?, distinct: UInt64) {
        var batch: [Record] = []
        batch.reserveCapacity(batchSize)
        var highest: OID?
        var distinct: UInt64 = 0
        var copied = MigrationProgress(phase: .copying, records: 0, bytes: 0)
        progress(copied)
        func flush() throws {
            guard !batch.isEmpty else { return }
            distinct += try migrationTransaction { txn in
                var added: UInt64 = 0
                for record in batch {
                    if try records.insert(record.oid, record.bytes, txn: txn) {
                        added += 1
                    } else {
                        try records.put(record.oid, record.bytes, txn: txn)
                    }
                }
                return added
            }
            try keepCacheClean()
            copied.records += batch.count
            copied.bytes += batch.reduce(0) { $0 + $1.bytes.count }
            batch.removeAll(keepingCapacity: true)
            progress(copied)
        }
        func admit(_ record: Record) throws {
            batch.append(record)
            if batch.count >= batchSize { try flush() }
        }
        var window = RecordWindow()
        try source.forEachRecord { record in
            highest = max(highest ?? record.oid, record.oid)
            try window.offer(record, admit)
        }
        try window.drain(admit)
        try flush()
        return (highest, distinct)
    }

    /// Visits every record reachable from the root once, `batchSize` visits
    /// per transaction, counting each reference of each one: the counts are
    /// then complete, and an OID counted for the first time is one to visit
    /// (the root is visited first, whether or not anything references it).
    /// Returns the objects and bytes visited.
    private func markAndCount(batchSize: Int, progress: (MigrationProgress) -> Void) throws -> Counters {
        var counters = Counters(objects: 0, bytes: 0, garbageQueued: false)
        var marked = MigrationProgress(phase: .marking, records: 0, bytes: 0)
        progress(marked)
        let spill = try temporaryTable("migrate-frontier")
        defer { spill.close() }
        var frontier = Frontier(spill: spill)
        try frontier.push(.root)
        var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 8)
        defer { buffer.deallocate() }
        var references: [UInt64] = []
        var window = CountWindow()
        func countUp(_ oid: UInt64, txn: Txn) throws -> Bool {
            try window.countUp(oid, counted: { try refcounts.countUp(OID($0), txn: txn) },
                               out: { try refcounts.putCount(OID($0), $1, txn: txn) })
        }
        var finished = false
        while !finished {
            try migrationTransaction { txn in
                for _ in 0 ..< batchSize {
                    guard let oid = try frontier.pop() else {
                        finished = true
                        return
                    }
                    // A dangling reference is counted and has no record: nothing to visit.
                    guard let length = try records.read(oid, into: &buffer, txn: txn) else { continue }
                    counters.objects += 1
                    counters.bytes += UInt64(length)
                    distinctReferences(UnsafeRawBufferPointer(rebasing: buffer[..<length]), of: oid, into: &references)
                    for ref in references where try countUp(ref, txn: txn) && ref != OID.root.rawValue {
                        try frontier.push(OID(ref))
                    }
                }
            }
            try keepCacheClean()
            marked.records = Int(counters.objects)
            marked.bytes = Int(counters.bytes)
            progress(marked)
        }
        while !window.isEmpty {
            try migrationTransaction { txn in
                try window.drain(limit: batchSize) { try refcounts.putCount(OID($0), $1, txn: txn) }
            }
        }
        return counters
    }

    /// Deletes every record but the root that no reference counted, in
    /// transactions of `batchSize` records, reading keys only.
    private func sweep(batchSize: Int, progress: (MigrationProgress) -> Void) throws {
        var swept = MigrationProgress(phase: .counting, records: 0, bytes: 0)
        var next: OID? = .root
        while let start = next {
            next = try migrationTransaction { txn in
                try records.withCursor(txn: txn) { cursor in
                    var oid = try cursor.key(atOrAfter: start)
                    for _ in 0 ..< batchSize {
                        guard let current = oid else { break }
                        if current != .root, try !refcounts.exists(current, txn: txn) { try cursor.deleteCurrent() }
                        swept.records += 1
                        oid = try cursor.key()
                    }
                    return oid
                }
            }
            try keepCacheClean()
            progress(swept)
        }
    }

    /// Writes dirty pages out until a fifth of the cache is clean. The
    /// background checkpoint that does this waits for the writer's lock,
    /// which a migration holds throughout; without it a store bigger than
    /// the cache fills it with dirty pages, and every page read then
    /// searches the whole cache for one it may evict.
    private func keepCacheClean() throws {
        try Engine.check(durus_env_memp_trickle(env, 20), "write dirty pages")
    }
}

extension BerkeleyDBStorage.Configuration {
    /// The settings to open a store with for
    /// ``BerkeleyDBStorage/migrate(from:batchSize:progress:)``, as `durus
    /// migrate` does: the defaults with a 16 MiB cache, without
    /// ``snapshotReads`` and with ``migrationOnly`` (its tables written
    /// without a log). A migration reads and writes the store nearly front
    /// to back, so a bigger cache holds little it reads again, while its
    /// memory would grow with the source up to the cache size; and with
    /// multi-version pages every page it fills is copied, and the copies go
    /// out to freezer files once the store outgrows the cache.
    /// All three are chosen at each open: opened again afterwards with the
    /// defaults, the store logs its writes and serves snapshot reads from
    /// the cache its new configuration asks for.
    public static var migration: Self {
        var configuration = Self()
        configuration.cacheSize = 16 << 20
        configuration.snapshotReads = false
        configuration.migrationOnly = true
        return configuration
    }
}

import CBerkeleyDB
import CDurusReplication
import Durus
import Foundation
import Synchronization

/// A `Storage` kept in a Berkeley DB environment directory, with
/// transactions, recovery, snapshot reads and prompt reference-counted
/// garbage collection.
///
/// ```swift
/// let storage = try BerkeleyDBStorage(path: "bank.db")
/// let root = try storage.newOID()
/// try storage.commit([Record(oid: root, data: Array("hello".utf8), references: [])])
/// print(storage.objectCount)     // 1
/// try storage.close()
/// ```
///
/// **Tables.** `records.db` (OID → record), `refcounts.db` (OID → how many
/// stored records reference it, where that is not once: a stored object
/// without a row is referenced once, the root not at all), `garbage.db`
/// (OIDs whose count reached zero), `meta.db` (format version, OID
/// reservation, object and byte counts). Counts change in the same
/// transaction as the records.
///
/// **Garbage.** A commit adjusts the counts by each stored record's new
/// references minus its old ones; an object whose count reaches zero (and a
/// new object nothing references) joins the garbage queue in that same
/// transaction. Before `commit` returns, the queue is drained in bounded
/// transactions, cascading to what the collected objects referenced; the
/// OIDs collected are reported by ``sync()``. A crash at any point leaves the
/// queue intact, and the next open drains it. The root is never collected;
/// OIDs are never reused. Cycles are invisible to counting (``verify()``
/// names them).
///
/// **Concurrency.** Loads run in snapshot transactions and never wait for a
/// commit; any number of threads may load while one commits. Commits are
/// applied one at a time. One process may have a store open for writing;
/// others may open it ``Configuration/readOnly``.
public final class BerkeleyDBStorage: Storage, @unchecked Sendable {
    /// The on-disk format this build writes and reads. Format 1 (an object
    /// without a count row had no referrer) is read too, and brought to
    /// format 2 when opened for writing.
    public static let formatVersion = 2

    /// The environment directory.
    public let path: String
    /// The settings it was opened with.
    public let configuration: Configuration
    /// The access method the store was created with.
    public let accessMethod: AccessMethod

    let env: UnsafeMutablePointer<DB_ENV>
    let records: Table
    let refcounts: Table
    let garbage: Table
    let meta: Table
    /// A replicated store's commit log (sequence number → the OIDs a commit
    /// changed or a collection deleted), written by the master in each
    /// commit's own transaction and read by replicas as it arrives.
    let commitLog: Table?
    /// Set for a replicated store.
    let replicationState: ReplicationState?
    /// Snapshots kept between loads; nil without ``Configuration/snapshotReads``
    /// and for a replicated store (whose reads see what the master sent).
    let snapshots: SnapshotPool?

    /// Loads and other readers hold it shared; `close()` holds it alone.
    private let handles = ReadWriteLock()
    /// Guarded by `handles`.
    private var isClosed = false
    /// Serializes commits and collection; holds the object and byte counts.
    let writer: Mutex<Counters>
    let oids: Mutex<OIDAllocator>
    let collected = Mutex<[OID]>([])
    let collectionError = Mutex<CollectionFailure?>(nil)
    private let lockFile: Int32
    /// A buffer for reading old records during a commit; used only under
    /// `writer`, so exempt from the run-time exclusivity checks.
    @exclusivity(unchecked) var scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 8)
    private var checkpointer: Checkpointer?
    private var backgroundCollector: BackgroundCollector?
    /// While the cycle collector marks: every OID a commit stores or
    /// references, so what was relinked or created meanwhile counts as live.
    let cycleTracking = Mutex<CycleTracking?>(nil)
    /// Serializes cycle collections.
    let cycleCollector = Mutex(())
    /// Bytes committed since the last automatic cycle collection, and
    /// whether one is running (see ``Configuration/collectCyclesAfterBytes``).
    private let cycleTrigger = Mutex((bytes: 0, running: false))

    struct CollectionFailure: Error, CustomStringConvertible {
        var description: String
    }

    struct Counters {
        var objects: UInt64
        var bytes: UInt64
        /// The garbage queue may hold entries: set when a commit queues some
        /// (and at open), cleared when a drain finds it empty, so a commit
        /// that made no garbage costs no collection transaction.
        var garbageQueued = true
        /// The drain under way: when its first batch began, and what it has deleted.
        var drain: (start: ContinuousClock.Instant, collected: Int)?
        /// The last commit-log sequence number written (a replicated
        /// master); nil when it must be read from the table.
        var logSequence: UInt64?
        /// Whether an object without a count row is referenced once (format
        /// 2) rather than not at all (format 1, as the root is in both).
        var omitsCountOfOne = true
    }

    struct OIDAllocator {
        /// The next OID to hand out.
        var next: UInt64
        /// OIDs below this are reserved in `meta.db`; a restart continues here.
        var reserved: UInt64
        /// OIDs this handle gave out that no commit has stored yet: a
        /// commit stores such a record without looking for an old one, and
        /// without reading a reference count or a garbage entry for it,
        /// which would all be absent. That is three of a new object's five
        /// Berkeley DB operations. Forgetting one is always safe (its commit
        /// then searches), so the set is emptied when it reaches
        /// `freshLimit` (about 8 MB): OIDs that clients reserved and never
        /// used cannot make it grow without end.
        var fresh: Set<UInt64> = []
    }

    static let freshLimit = 1 << 19

    static let oidReservationBlock: UInt64 = 1024
    static let deadlockRetries = 100

    /// Opens the store at `path`, creating it when missing (unless
    /// ``Configuration/createIfMissing`` is off). Recovery runs first when a
    /// process that had it open died; pending garbage is then collected.
    ///
    /// - Throws: `DurusError.notAStore(path:reason:)` for a file or a
    ///   directory holding something else; `DurusError.storeInUse(path:)`
    ///   when another process has it open for writing;
    ///   `DurusError.corruptStore(path:reason:)` for damaged files;
    ///   `DurusError.unsupportedFormat(path:found:supported:)`.
    public init(path: String, configuration given: Configuration = .init()) throws {
        var configuration = given
        if configuration.replication != nil {
            // Berkeley DB refuses snapshot transactions and multi-version
            // tables on a replica, and a role change does not reopen tables.
            configuration.snapshotReads = false
            if configuration.readOnly || configuration.migrationOnly {
                throw ReplicationError.invalidConfiguration("a replicated store cannot be opened read-only or for migration")
            }
        } else if FileManager.default.fileExists(atPath: path + "/__db.rep.system") {
            // A site of a replication group: a change made outside the group
            // would make this copy differ from every other for ever.
            guard configuration.readOnly else {
                throw ReplicationError.invalidConfiguration("\(path) is a site of a replication group: open it with Configuration.replication (durus serve --replication), or read-only")
            }
            // Inspecting a site a server replicates (durus stats): its tables
            // are open without multiple versions, so this process reads without them too.
            configuration.snapshotReads = false
        }
        if let replication = configuration.replication { try Self.admitToReplication(path, replication) }
        self.path = path
        self.configuration = configuration
        let existed = try Self.prepareDirectory(path, configuration: configuration)
        lockFile = try Self.takeWriterLock(path, readOnly: configuration.readOnly)
        var envHandle: UnsafeMutablePointer<DB_ENV>?
        var opened: [Table] = []
        // A store of format 1 is brought to format 2 once it is open.
        var upgrades = false
        do {
            envHandle = try Self.openEnvironment(path, configuration: configuration)
            let env = envHandle!
            if let replication = configuration.replication, durus_rep_role(env) != durus_role_master {
                // A replica: every table comes from the master; none is created here.
                let deadline = ContinuousClock.now + replication.startTimeout
                for file in ["meta.db", "records.db", "refcounts.db", "garbage.db", "commitlog.db"] {
                    opened.append(try Self.openReplicatedTable(env, file, until: deadline, configuration, path))
                }
                while try opened[0].uint64("format", txn: nil) == 0 {
                    guard ContinuousClock.now < deadline else {
                        throw ReplicationError.cannotJoinGroup(reason: "the master's store has no format version yet")
                    }
                    Thread.sleep(forTimeInterval: 0.02)
                }
                let format = try opened[0].uint64("format", txn: nil)
                if format > UInt64(Self.formatVersion) {
                    throw DurusError.unsupportedFormat(path: path, found: Int(clamping: format), supported: Self.formatVersion)
                }
                var actualType = durus_DB_BTREE
                try Engine.check(durus_db_get_type(opened[1].handle, &actualType), "read the access method")
                accessMethod = actualType == durus_DB_HASH ? .hash : .btree
                self.env = env
                snapshots = nil
                (meta, records, refcounts, garbage, commitLog) = (opened[0], opened[1], opened[2], opened[3], opened[4])
                let reserved = try meta.uint64("next-oid", txn: nil)
                oids = Mutex(OIDAllocator(next: reserved, reserved: reserved))
                writer = Mutex(Counters(objects: try meta.uint64("objects", txn: nil), bytes: try meta.uint64("bytes", txn: nil),
                                        omitsCountOfOne: format >= 2))
                let state = ReplicationState(configuration: replication)
                state.withWatch { $0.sequence = (try? Self.lastLogSequence(env, opened[4])) ?? 0 }
                replicationState = state
                state.startWatcher(self)
                // Replicas checkpoint too (their logs grow as the master's);
                // they never collect: deletions arrive from the master.
                checkpointer = Checkpointer(storage: self, interval: configuration.checkpointInterval)
                return
            }
            let metaTable = try Self.openTable(env, "meta.db", durus_DB_BTREE, create: !configuration.readOnly,
                                               configuration, path)
            opened.append(metaTable)
            let format = try metaTable.uint64("format", txn: nil)
            // No format yet: a new store, or one whose creation a crash cut
            // short (the format is written last); either way, create it now.
            let create = format == 0 && !configuration.readOnly
            if format == 0 && !create {
                throw DurusError.corruptStore(path: path, reason: existed ? "meta.db holds no format version" : "not created yet")
            }
            if format > UInt64(Self.formatVersion) {
                throw DurusError.unsupportedFormat(path: path, found: Int(clamping: format), supported: Self.formatVersion)
            }
            // A migration writes the other tables without a log
            // (``Configuration/migrationOnly``): while its mark is set, only such an open may
            // use them, and it starts them afresh, since a crash may have
            // left them torn where recovery cannot mend them.
            let migrationCutShort = try metaTable.string("migration", txn: nil) != nil
            if migrationCutShort && (!configuration.migrationOnly || configuration.readOnly) {
                throw DurusError.corruptStore(path: path, reason: "a migration into it is running or was cut short: run it again (`durus migrate`, or open with Configuration.migration and migrate)")
            }
            var method = configuration.accessMethod
            if migrationCutShort {
                method = AccessMethod(rawValue: try metaTable.string("access-method", txn: nil) ?? "") ?? .btree
                for file in ["garbage.db", "refcounts.db", "records.db"] {
                    let code = durus_env_dbremove(env, file)
                    if code != 0 && code != ENOENT { try Engine.check(code, "remove \(file) of the migration cut short") }
                }
            }
            let createTables = create || migrationCutShort
            let type = createTables ? (method == .hash ? durus_DB_HASH : durus_DB_BTREE) : durus_DB_UNKNOWN
            let logged = !configuration.migrationOnly
            let recordsTable = try Self.openTable(env, "records.db", type, create: createTables, logged: logged, configuration, path)
            opened.append(recordsTable)
            let refcountsTable = try Self.openTable(env, "refcounts.db", type, create: createTables, logged: logged, configuration, path)
            opened.append(refcountsTable)
            let garbageTable = try Self.openTable(env, "garbage.db", durus_DB_BTREE, create: createTables, logged: logged,
                                                  configuration, path)
            opened.append(garbageTable)
            var actualType = durus_DB_BTREE
            try Engine.check(durus_db_get_type(recordsTable.handle, &actualType), "read the access method")
            accessMethod = actualType == durus_DB_HASH ? .hash : .btree
            self.env = env
            snapshots = configuration.snapshotReads && configuration.replication == nil ? SnapshotPool(env: env) : nil
            records = recordsTable
            refcounts = refcountsTable
            garbage = garbageTable
            meta = metaTable
            if create {
                try Self.initializeMeta(env, metaTable, accessMethod,
                                        beginFlags: Self.ownTransactionFlags(configuration))
            }
            if let replication = configuration.replication {
                let log = try Self.openTable(env, "commitlog.db", durus_DB_BTREE, create: true, configuration, path)
                opened.append(log)
                commitLog = log
                let state = ReplicationState(configuration: replication)
                let last = try Self.lastLogSequence(env, log)
                state.withWatch { $0 = .init(sequence: last, masterLoaded: true) }
                replicationState = state
            } else {
                commitLog = nil
                replicationState = nil
            }
            let reserved = try meta.uint64("next-oid", txn: nil)
            oids = Mutex(OIDAllocator(next: reserved, reserved: reserved))
            writer = Mutex(Counters(objects: try meta.uint64("objects", txn: nil), bytes: try meta.uint64("bytes", txn: nil),
                                    omitsCountOfOne: create || format >= 2))
            upgrades = format == 1 && !configuration.readOnly && !configuration.migrationOnly
        } catch {
            for table in opened.reversed() { table.close() }
            if let envHandle { _ = durus_env_close(envHandle) }
            if lockFile >= 0 { Foundation.close(lockFile) }
            throw Self.describeOpenFailure(error, path: path)
        }
        if upgrades {
            try writer.withLock { counters in try upgradeCounts(&counters) }
        }
        replicationState?.startWatcher(self)
        if !configuration.readOnly {
            checkpointer = Checkpointer(storage: self, interval: configuration.checkpointInterval)
            if configuration.migrationOnly {
                // Collecting writes the unlogged tables: left to the next ordinary open.
            } else if configuration.collectsInBackground {
                backgroundCollector = BackgroundCollector(storage: self, pause: configuration.collectionPause)
            } else {
                writer.withLock { counters in collectGarbageAfterCommit(&counters) }
            }
        }
    }

    deinit {
        try? close()
        scratch.deallocate()
    }

    // MARK: Storage

    public func load(_ oid: OID) throws -> Record {
        try reading { () throws in
            try snapshot { txn in
                guard let bytes = try records.get(oid, txn: txn) else { throw DurusError.keyNotFound(oid) }
                return try Record(bytes: bytes)
            }
        }
    }

    public func bulkLoad(_ oids: [OID]) throws -> [Record] {
        try reading { () throws in
            try snapshot { txn in
                try oids.map { oid in
                    guard let bytes = try records.get(oid, txn: txn) else { throw DurusError.keyNotFound(oid) }
                    return try Record(bytes: bytes)
                }
            }
        }
    }

    public func newOID() throws -> OID {
        try newOIDs(count: 1)[0]
    }

    /// `count` consecutive fresh OIDs, taken under one lock.
    public func newOIDs(count: Int) throws -> [OID] {
        try reading { () throws in
            try requireWritable()
            if replicationState != nil { try writer.withLock { counters in try loadMasterState(&counters) } }
            return try oids.withLock { allocator in
                var handed: [OID] = []
                handed.reserveCapacity(count)
                for _ in 0 ..< count {
                    if allocator.next >= allocator.reserved {
                        let (reserved, overflow) = allocator.next.addingReportingOverflow(Self.oidReservationBlock)
                        if overflow { throw DurusError.corruptStore(path: path, reason: "the OID space is used up") }
                        try writeTransaction { txn in try meta.putUInt64("next-oid", reserved, txn: txn) }
                        allocator.reserved = reserved
                    }
                    if allocator.fresh.count >= Self.freshLimit { allocator.fresh.removeAll() }
                    allocator.fresh.insert(allocator.next)
                    handed.append(OID(allocator.next))
                    allocator.next += 1
                }
                return handed
            }
        }
    }

    public func commit(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws {
        try store(records, handleInvalidations: handleInvalidations, commitFlags: 0)
    }

    /// True unless replicated: commits are applied here, in one process.
    public var appliesCommitsAfterTheExchange: Bool { replicationState == nil }

    /// With ``Durability/full``, commits without waiting for the log to reach
    /// the disk and returns that wait (one `log_flush`: threads that flush at
    /// once share one write and fsync). Otherwise a commit, and `nil`.
    public func commitAwaitingFlush(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws
        -> PendingFlush? {
        guard configuration.durability == .full else {
            try commit(records, handleInvalidations: handleInvalidations)
            return nil
        }
        try store(records, handleInvalidations: handleInvalidations, commitFlags: durus_DB_TXN_NOSYNC)
        guard !records.isEmpty else { return nil }
        return { [self] in
            try reading { () throws in try checkSpace(durus_env_log_flush(env), "flush the log") }
        }
    }

    /// A commit; `commitFlags` go to Berkeley DB's transaction commit.
    private func store(_ records: [Record], handleInvalidations: ([OID]) throws -> Void, commitFlags: UInt32) throws {
        try handleInvalidations([])
        guard !records.isEmpty else { return }
        try storeBatch([records], commitFlags: commitFlags)[0].get()
    }

    /// Commits `batch`, in order, as one Berkeley DB transaction: one log
    /// write and, replicated, one wait for acknowledgements for them all.
    /// Each commit still stands or falls alone: one refused (a write
    /// conflict, an OID never handed out) is left out and the others are
    /// made again without it. Any other failure fails them all. Throws when none can be stored (the
    /// transaction itself failed); a commit stored whose acknowledgements
    /// did not arrive gets ``DurusError/commitNotDurable(reason:)``.
    func storeBatch(_ batch: [[Record]], commitFlags: UInt32) throws -> [Result<Void, any Error>] {
        var outcomes = [Result<Void, any Error>](repeating: .success(()), count: batch.count)
        try reading { () throws in
            try requireWritable()
            var token: [UInt8] = replicationState == nil ? [] : Array(repeating: 0, count: CommitToken.size)
            var permFailed = false
            var stored: [Int] = []
            try writer.withLock { counters in
                if replicationState != nil { try loadMasterState(&counters) }
                // Every OID handed out; the fresh ones taken under `writer`,
                // so no other commit can store them first.
                var fresh = [Set<OID>](repeating: [], count: batch.count)
                oids.withLock { allocator in
                    for (index, records) in batch.enumerated() {
                        if let unknown = records.first(where: { $0.oid.rawValue >= allocator.next }) {
                            outcomes[index] = .failure(DurusError.oidNotAllocated(unknown.oid))
                            continue
                        }
                        for record in records where allocator.fresh.remove(record.oid.rawValue) != nil {
                            fresh[index].insert(record.oid)
                        }
                        stored.append(index)
                    }
                }
                /// A commit of the batch refused while the others were being made.
                struct Refused: Error { let index: Int; let error: any Error }
                var change = counters
                while !stored.isEmpty {
                    do {
                        durus_rep_clear_perm_failed()
                        change = try writeTransaction(flags: commitFlags) { txn in
                            var result = counters
                            for index in stored {
                                do {
                                    result = try applyCommit(batch[index], fresh: fresh[index], counters: result, txn: txn)
                                } catch let conflict as ConflictError {
                                    throw Refused(index: index, error: conflict)
                                }
                                if replicationState != nil {
                                    try appendCommitLog(batch[index].map(\.oid), &result, txn: txn)
                                }
                            }
                            if replicationState != nil {
                                try token.withUnsafeMutableBytes { buffer in
                                    try Engine.check(durus_txn_set_commit_token(txn, buffer.baseAddress), "ask for a commit token")
                                }
                            }
                            return result
                        }
                        permFailed = durus_rep_perm_failed() != 0
                        break
                    } catch let refused as Refused {
                        // Not stored: its fresh OIDs are still fresh; the others go again.
                        outcomes[refused.index] = .failure(refused.error)
                        oids.withLock { allocator in for oid in fresh[refused.index] { allocator.fresh.insert(oid.rawValue) } }
                        stored.removeAll { $0 == refused.index }
                    } catch {
                        // Not stored after all: still fresh.
                        oids.withLock { allocator in
                            for index in stored { for oid in fresh[index] { allocator.fresh.insert(oid.rawValue) } }
                        }
                        throw error
                    }
                }
                guard !stored.isEmpty else { return }
                counters = change
                if let state = replicationState {
                    noteCommitLogWritten(counters)
                    state.lastToken.withLock { $0 = CommitToken(bytes: token) }
                }
                for index in stored { noteForCycleCollection(batch[index]) }
                if let background = backgroundCollector {
                    if counters.garbageQueued { background.wake() }
                } else {
                    collectGarbageAfterCommit(&counters)
                }
            }
            if configuration.collectCyclesAfterBytes > 0 {
                startCycleCollectionIfDue(after: stored.reduce(0) { $0 + batch[$1].reduce(0) { $0 + $1.bytes.count } })
            }
            if permFailed {
                let notDurable = DurusError.commitNotDurable(reason: "the replicas did not acknowledge it within \(configuration.replication?.ackTimeout ?? .zero): it is stored on this master but a failover may lose it")
                for index in stored { outcomes[index] = .failure(notDurable) }
            }
        }
        return outcomes
    }

    /// Commits `batch` in order, in one Berkeley DB transaction, each commit
    /// standing or falling alone (see `Storage.commitAwaitingFlush(batch:)`),
    /// with the durability of ``commitAwaitingFlush(_:handleInvalidations:)``:
    /// with ``Durability/full`` each stored commit's outcome is the one wait
    /// for the disk they share.
    public func commitAwaitingFlush(batch: [[Record]]) -> [Result<PendingFlush?, any Error>] {
        let full = configuration.durability == .full
        let outcomes: [Result<Void, any Error>]
        do {
            outcomes = try storeBatch(batch, commitFlags: full ? durus_DB_TXN_NOSYNC : 0)
        } catch {
            return batch.map { _ in .failure(error) }
        }
        var flush: PendingFlush?
        if full {
            flush = { @Sendable [self] in
                try reading { () throws in try checkSpace(durus_env_log_flush(env), "flush the log") }
            }
        }
        return outcomes.map { $0.map { flush } }
    }

    /// Counts committed bytes towards ``Configuration/collectCyclesAfterBytes``
    /// and, past it, starts a cycle collection on a thread of its own
    /// (unless one is running): its failure is kept for ``lastCollectionError``.
    private func startCycleCollectionIfDue(after bytes: Int) {
        let limit = configuration.collectCyclesAfterBytes
        let due = cycleTrigger.withLock { trigger in
            trigger.bytes += bytes
            guard trigger.bytes >= limit, !trigger.running else { return false }
            trigger = (0, true)
            return true
        }
        guard due else { return }
        Thread { [self] in
            defer { cycleTrigger.withLock { $0.running = false } }
            do { _ = try collectCycles() } catch DurusError.closed {} catch { noteCollectionFailure(error) }
        }.start()
    }

    /// The error that stopped the last collection, if it failed; the queue
    /// keeps what was not collected, and the next commit or open tries again.
    public var lastCollectionError: (any Error)? { collectionError.withLock { $0.map { $0 as any Error } } }

    public func sync() throws -> [OID] {
        try reading { () throws in
            collected.withLock { oids in
                defer { oids = [] }
                return oids
            }
        }
    }

    /// Collects pending garbage, then runs the cycle collector
    /// (``collectCycles(batchSize:)``): afterwards the store holds exactly
    /// what the root reaches, as of the collection's start. Loads and
    /// commits go on meanwhile.
    public func pack() throws {
        try reading { () throws in
            try requireWritable()
            try writer.withLock { counters in try collectGarbage(&counters) }
        }
        _ = try collectCycles()
    }

    public func forEachRecord(_ body: (Record) throws -> Void) throws {
        try reading { () throws in
            try snapshot { txn in
                try records.scan(txn: txn) { _, value in
                    try body(try Record(bytes: Array(value)))
                    return true
                }
            }
        }
    }

    public func close() throws {
        checkpointer?.stop()
        backgroundCollector?.stop()
        replicationState?.stop()
        let wasOpen = handles.writing { () -> Bool in
            defer { isClosed = true }
            return !isClosed
        }
        guard wasOpen else { return }
        if !configuration.readOnly {
            // Checkpointed, the store needs only its last log file to open.
            if durus_env_txn_checkpoint(env, 0, 0) == 0 { try? removeUnusedLogs() }
        }
        snapshots?.advance()  // ends the idle ones: no read is running now
        for table in [commitLog, garbage, refcounts, records, meta].compactMap({ $0 }) { table.close() }
        let replicationMemory = durus_rep_state_pointer(env)
        let code = durus_env_close(env)
        if replicationState != nil { durus_rep_free_state(replicationMemory) }
        // The region files hold a cache of pages: left behind, the next open
        // (or a copy of the directory) would trust them instead of the files.
        // Removing them fails harmlessly while another process has them open.
        // A replicated site keeps them: Berkeley DB's replication files live beside them.
        if code == 0 && !configuration.readOnly && replicationState == nil { _ = durus_env_remove(path) }
        if lockFile >= 0 { Foundation.close(lockFile) }
        // On a full disk the cache cannot be written out: the handle is closed
        // all the same, and the next open recovers every commit the log holds
        // (not one reported `commitNotDurable` whose log never reached the disk).
        try checkSpace(code, "close the environment")
    }

    // MARK: Counts

    /// The number of stored objects, garbage not yet collected included. O(1).
    public var objectCount: Int { writer.withLock { Int(clamping: $0.objects) } }

    /// The total size of the stored records, in bytes. O(1).
    public var byteCount: Int { writer.withLock { Int(clamping: $0.bytes) } }

    /// The number of objects waiting in the garbage queue (0 between commits
    /// unless a collection was interrupted). O(queue).
    public func pendingGarbageCount() throws -> Int {
        try reading { () throws in
            try snapshot { txn in
                var count = 0
                try garbage.scan(txn: txn) { _, _ in
                    count += 1
                    return true
                }
                return count
            }
        }
    }

    /// Writes a checkpoint and removes log files recovery no longer needs.
    /// The background task does this every ``Configuration/checkpointInterval``.
    ///
    /// Dirty pages are first written while commits go on; the checkpoint
    /// itself then runs between two commits, because a page that every commit
    /// dirties (the root's) would otherwise keep it waiting for ever. Loads
    /// never wait for it.
    public func checkpoint() throws {
        try reading { () throws in
            guard !configuration.readOnly else { return }
            try checkSpace(durus_env_memp_trickle(env, 100), "write dirty pages")
            if replicationState != nil {
                // Replicated, a checkpoint can wait for the group (a replica's
                // sync under way): commits must not wait behind it.
                try checkSpace(durus_env_txn_checkpoint(env, 0, 0), "checkpoint")
            } else {
                try writer.withLock { _ in try checkSpace(durus_env_txn_checkpoint(env, 0, 0), "checkpoint") }
            }
            try removeUnusedLogs()
        }
    }

    /// Runs `body` while the handles are open.
    func reading<T>(_ body: () throws -> T) throws -> T {
        guard replicationState != nil else {
            return try handles.reading { () throws -> T in
                guard !isClosed else { throw DurusError.closed }
                return try body()
            }
        }
        // Replicated: a rollback (after a failover) or an internal init
        // kills every open table handle at once. The outermost call reopens
        // them all, with no other thread inside, and tries once more.
        let outermost = durus_rep_depth_enter() == 0
        defer { durus_rep_depth_leave() }
        do {
            return try handles.reading { () throws -> T in
                guard !isClosed else { throw DurusError.closed }
                return try body()
            }
        } catch let error as BerkeleyDBError where error.code == durus_DB_REP_HANDLE_DEAD && outermost {
            try handles.writing { () throws in
                guard !isClosed else { throw DurusError.closed }
                for table in [meta, records, refcounts, garbage, commitLog].compactMap({ $0 }) { try table.reopen(env) }
                replicationState?.rewindAfterReopen()
            }
            return try handles.reading { () throws -> T in
                guard !isClosed else { throw DurusError.closed }
                return try body()
            }
        }
    }

    /// The highest commit-log sequence number in `log`.
    static func lastLogSequence(_ env: UnsafeMutablePointer<DB_ENV>, _ log: Table) throws -> UInt64 {
        var txn: Txn?
        try Engine.check(durus_txn_begin(env, &txn, 0), "begin a transaction")
        do {
            let last = try log.lastSequence(txn: txn!)
            try Engine.check(durus_txn_commit(txn, 0), "end a transaction")
            return last
        } catch {
            _ = durus_txn_abort(txn)
            throw error
        }
    }
}

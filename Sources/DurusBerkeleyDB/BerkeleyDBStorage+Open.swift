import CBerkeleyDB
import CDurusReplication
import Durus
import Foundation

extension BerkeleyDBStorage {
    /// The files a store's directory may hold besides its tables.
    private static func belongsToStore(_ name: String) -> Bool {
        ["meta.db", "records.db", "refcounts.db", "garbage.db", "commitlog.db", "replication-status.json", "durus.lock", "backup.lock", "DB_CONFIG"].contains(name)
            || name.hasPrefix("__db.") || name.hasPrefix("log.")
    }

    /// Checks what is at `path`, creating the directory when allowed.
    /// Returns whether a store (its `meta.db`) already exists there.
    static func prepareDirectory(_ path: String, configuration: Configuration) throws -> Bool {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
            guard configuration.createIfMissing, !configuration.readOnly else {
                throw DurusError.notAStore(path: path, reason: "no such directory")
            }
            do {
                try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                throw DurusError.io(path: path, message: "cannot create the directory: \(error.localizedDescription)")
            }
            return false
        }
        guard isDirectory.boolValue else {
            throw DurusError.notAStore(path: path, reason: "it is a file, not a store directory")
        }
        let entries: [String]
        do {
            entries = try fm.contentsOfDirectory(atPath: path)
        } catch {
            throw DurusError.io(path: path, message: "cannot list the directory: \(error.localizedDescription)")
        }
        if entries.contains("meta.db") { return true }
        if let stranger = entries.sorted().first(where: { !belongsToStore($0) }) {
            throw DurusError.notAStore(path: path, reason: "the directory holds \(stranger) and no meta.db")
        }
        if configuration.readOnly || (entries.contains("records.db") && configuration.replication == nil) {
            throw DurusError.notAStore(path: path, reason: "there is no meta.db")
        }
        return false
    }

    /// Takes `durus.lock` exclusively (released by the kernel if the process
    /// dies), so two processes never write one store. -1 when read-only.
    static func takeWriterLock(_ path: String, readOnly: Bool) throws -> Int32 {
        guard !readOnly else { return -1 }
        let lockPath = path + "/durus.lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw DurusError.io(path: lockPath, message: String(cString: strerror(errno)))
        }
        // A lock just released can still be held for a moment by a child this
        // process is forking (its copy of the descriptor lives until exec), so
        // a busy lock is retried briefly before the store counts as in use.
        for attempt in 0 ..< 50 {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return fd }
            let code = errno
            guard code == EWOULDBLOCK, attempt < 49 else {
                Foundation.close(fd)
                if code == EWOULDBLOCK { throw DurusError.storeInUse(path: path) }
                throw DurusError.io(path: lockPath, message: String(cString: strerror(code)))
            }
            usleep(20_000)
        }
        return fd
    }

    /// Opens the environment with transactions, logging, locking and a cache.
    /// `DB_REGISTER` with `DB_RECOVER` runs recovery exactly when needed: on the
    /// first open, and when a process that had the environment open has died.
    static func openEnvironment(_ path: String, configuration: Configuration) throws -> UnsafeMutablePointer<DB_ENV> {
        var handle: UnsafeMutablePointer<DB_ENV>?
        try Engine.check(durus_env_create(&handle), "create an environment handle")
        guard let env = handle else { throw BerkeleyDBError(code: -1, operation: "create an environment handle", message: "no handle") }
        do {
            durus_env_set_errcall(env, captureDiagnostic)
            if let replication = configuration.replication { try configureReplication(env, replication) }
            let cache = UInt64(max(configuration.cacheSize, 1 << 20))
            try Engine.check(durus_env_set_cachesize(env, UInt32(cache >> 30), UInt32(cache & ((1 << 30) - 1)), 1), "set the cache size")
            let locks = UInt32(clamping: configuration.maxLocks)
            try Engine.check(durus_env_set_lk_max(env, locks, locks, locks), "size the lock tables")
            try Engine.check(durus_env_set_lk_detect(env, durus_DB_LOCK_DEFAULT), "enable deadlock detection")
            try Engine.check(durus_env_set_tx_max(env, UInt32(clamping: configuration.maxTransactions)), "size the transaction table")
            let buffer = UInt32(clamping: max(configuration.logBufferSize, 64 << 10))
            try Engine.check(durus_env_set_lg_bsize(env, buffer), "set the log buffer size")
            // The log file size is the shared environment's, and a process
            // joining it sets it for everyone: only the writer decides it (a
            // read-only `durus backup` or `stats` beside a server once reset
            // the server's log files to this process's default).
            if !configuration.readOnly {
                try Engine.check(durus_env_set_lg_max(env, max(UInt32(clamping: configuration.logFileSize), 4 * buffer)), "set the log file size")
            }
            // The shared regions are files mapped into memory, which Berkeley
            // DB makes sparse and fills through the mapping: on a full disk,
            // SIGBUS instead of an error. Written at open (about 30 ms for the
            // default lock tables), a full disk fails the open with ENOSPC;
            // `reserveRegionSpace` covers what they grow into later.
            try Engine.check(durus_env_set_flags(env, durus_DB_REGION_INIT, 1), "write the shared regions at open")
            switch configuration.durability {
            case .full: break
            case .writeNoSync:
                // Replicated, the environment's default is no-sync, which is
                // what a replica applies its master's commits with: written
                // with their next write, not each written and flushed (an
                // fdatasync each, about 40% of a quorum commit's wait here).
                // This site's own transactions ask for write-no-sync
                // (`ownTransactionFlags`). What an acknowledged commit
                // survives is then the group's (see `Durability.writeNoSync`).
                let flag = configuration.replication == nil ? durus_DB_TXN_WRITE_NOSYNC : durus_DB_TXN_NOSYNC
                try Engine.check(durus_env_set_flags(env, flag, 1), "set write-no-sync")
            case .none: try Engine.check(durus_env_set_flags(env, durus_DB_TXN_NOSYNC, 1), "set no-sync")
            }
            var flags = durus_DB_CREATE | durus_DB_INIT_TXN | durus_DB_INIT_LOCK | durus_DB_INIT_LOG
                | durus_DB_INIT_MPOOL | durus_DB_THREAD | durus_DB_RECOVER | durus_DB_REGISTER
            if configuration.replication != nil { flags |= durus_DB_INIT_REP }
            try Engine.check(durus_env_open(env, path, flags, 0o644), "open the environment")
            if !configuration.readOnly { try reserveRegionSpace(path, cacheSize: Int(cache)) }
            if let replication = configuration.replication { try startReplication(env, path, replication) }
            return env
        } catch ReplicationError.peerNotAReplicationSite(let peers) {
            // Berkeley DB's start is still blocked inside the environment:
            // closing it under that call would crash, so it stays open.
            throw ReplicationError.peerNotAReplicationSite(peers: peers)
        } catch {
            let state = durus_rep_state_pointer(env)
            _ = durus_env_close(env)
            durus_rep_free_state(state)
            throw error
        }
    }

    /// Reserves disk space for what the shared region files grow into.
    ///
    /// Berkeley DB grows a region (the cache's most: to about 1.3 times the
    /// cache size as pages are used) by writing one byte at its new end, so
    /// the file is sparse there, and memory in it is then written through
    /// the mapping. On a full disk such a write cannot get a block and the
    /// kernel kills the process with SIGBUS: no error reaches anyone. With
    /// the blocks reserved at open (a full disk then fails the open with
    /// ENOSPC), the growth needs none. Files of Berkeley DB 5.3's regions:
    /// `__db.001` the environment's, `__db.002` the mutexes', `__db.003` the
    /// cache's (the numbering is Berkeley DB's order of creation, fixed for
    /// the subsystems opened here; `FullDiskTests` fails with SIGBUS if it
    /// changes). Each gets twice its size at open, the cache's 1.5 times the
    /// cache size more, a margin over the 1.3 measured. Only a full disk
    /// fails the open; a file system that cannot reserve is left as it was.
    /// The writer reserves; a read-only process beside it needs nothing more.
    static func reserveRegionSpace(_ path: String, cacheSize: Int) throws(BerkeleyDBError) {
        for number in 1 ... 9 {
            let file = path + "/__db.00\(number)"
            let fd = open(file, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { Glibc.close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0 else { continue }
            let size = Int(info.st_size)
            let reserve = number == 3 ? size + cacheSize + cacheSize / 2 : 2 * size
            var code: Int32 = 0
            repeat {
                code = durus_reserve_file_space(fd, Int64(reserve)) == 0 ? 0 : errno
            } while code == EINTR
            if code == ENOSPC || code == EDQUOT {
                throw Engine.error(code, "reserve \(reserve) bytes of disk for \(file)")
            }
        }
    }

    /// Opens one table; `logged: false` writes it without log records
    /// (``Configuration/migrationOnly``).
    static func openTable(_ env: UnsafeMutablePointer<DB_ENV>, _ file: String, _ type: DBTYPE, create: Bool,
                          logged: Bool = true, _ configuration: Configuration, _ path: String) throws -> Table {
        var flags = durus_DB_THREAD | durus_DB_AUTO_COMMIT
        if configuration.snapshotReads { flags |= durus_DB_MULTIVERSION }
        if create { flags |= durus_DB_CREATE }
        if configuration.readOnly { flags |= durus_DB_RDONLY }
        let db: UnsafeMutablePointer<DB>
        do {
            db = try Engine.openHandle(env, file: file, name: file, type: type, flags: flags) { db in
                // Page checksums: a page damaged on disk is reported, never read as data.
                if create { try Engine.check(durus_db_set_flags(db, durus_DB_CHKSUM), "enable checksums for \(file)") }
                if !logged { try Engine.check(durus_db_set_flags(db, durus_DB_TXN_NOT_DURABLE), "open \(file) without a log") }
            }
        } catch let error as BerkeleyDBError where error.operation == "open \(file)" {
            if error.code == ENOENT { throw DurusError.corruptStore(path: path, reason: "\(file) is missing") }
            throw DurusError.corruptStore(path: path, reason: "cannot open \(file): \(error.message)")
        }
        return Table(handle: db, name: file)
    }

    static func initializeMeta(_ env: UnsafeMutablePointer<DB_ENV>, _ meta: Table, _ method: AccessMethod,
                               beginFlags: UInt32) throws {
        var txn: Txn?
        try Engine.check(durus_txn_begin(env, &txn, beginFlags), "begin a transaction")
        do {
            try meta.putUInt64("format", UInt64(formatVersion), txn: txn)
            try meta.putString("access-method", method.rawValue, txn: txn)
            try meta.putUInt64("next-oid", 0, txn: txn)
            try meta.putUInt64("objects", 0, txn: txn)
            try meta.putUInt64("bytes", 0, txn: txn)
        } catch {
            _ = durus_txn_abort(txn)
            throw error
        }
        try Engine.check(durus_txn_commit(txn, 0), "commit a transaction")
    }

    /// Turns an engine failure while opening into a typed, explained error.
    static func describeOpenFailure(_ error: Error, path: String) -> Error {
        guard let engine = error as? BerkeleyDBError else { return error }
        switch engine.code {
        case ENOSPC, EDQUOT:
            return outOfSpace(engine, at: path)
        case ENOENT, EACCES, EROFS:
            return DurusError.io(path: path, message: engine.message)
        default:
            return DurusError.corruptStore(path: path, reason: "\(engine.operation): \(engine.message)")
        }
    }
}

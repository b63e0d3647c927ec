import CDurusReplication
import CBerkeleyDB
import Durus
import Foundation

extension BerkeleyDBStorage {
    /// What this site's own write transactions begin with: write-no-sync on
    /// a replicated write-no-sync store, whose environment's default is
    /// no-sync (for the commits replication applies); otherwise the
    /// environment's default.
    static func ownTransactionFlags(_ configuration: Configuration) -> UInt32 {
        configuration.replication != nil && configuration.durability == .writeNoSync ? durus_DB_TXN_WRITE_NOSYNC : 0
    }

    /// Runs `body` in a write transaction and commits it, retrying from the
    /// start when Berkeley DB picks it as a deadlock victim.
    func writeTransaction<T>(flags: UInt32 = 0, retries: Int = deadlockRetries, _ body: (Txn) throws -> T) throws -> T {
        var attempt = 0
        snapshots?.endIdle()
        let beginFlags = Self.ownTransactionFlags(configuration)
        while true {
            var txn: Txn?
            let begun = durus_txn_begin(env, &txn, beginFlags)
            // A replicated store's API is locked out for a moment during a role change.
            if begun == durus_DB_REP_LOCKOUT && attempt < retries {
                attempt += 1
                Thread.sleep(forTimeInterval: 0.005)
                continue
            }
            try Engine.check(begun, "begin a transaction")
            let result: T
            do {
                result = try body(txn!)
            } catch let error as BerkeleyDBError
                where (error.code == durus_DB_LOCK_DEADLOCK || error.code == durus_DB_LOCK_NOTGRANTED
                       || error.code == durus_DB_REP_LOCKOUT)
                && attempt < retries {
                _ = durus_txn_abort(txn)
                attempt += 1
                if error.code == durus_DB_REP_LOCKOUT { Thread.sleep(forTimeInterval: 0.005) }
                continue
            } catch {
                _ = durus_txn_abort(txn)
                throw outOfSpace(error)
            }
            // A failed commit aborts the transaction itself.
            try checkSpace(durus_txn_commit(txn, flags), "commit a transaction")
            snapshots?.advance()
            return result
        }
    }

    /// ``DurusError/diskFull(path:message:)`` for Berkeley DB's ENOSPC or
    /// EDQUOT (a log write or a page written out of the cache), naming
    /// `place` (the store unless told), else `error`.
    func outOfSpace(_ error: any Error, at place: String? = nil) -> any Error {
        Self.outOfSpace(error, at: place ?? path)
    }

    static func outOfSpace(_ error: any Error, at place: String) -> any Error {
        guard let engine = error as? BerkeleyDBError, engine.code == ENOSPC || engine.code == EDQUOT else { return error }
        return DurusError.diskFull(path: place, message: "\(engine.operation): \(engine.message)")
    }

    /// `Engine.check`, with a full disk reported as ``outOfSpace(_:at:)`` does.
    func checkSpace(_ code: Int32, _ operation: @autoclosure () -> String) throws {
        do {
            try Engine.check(code, operation())
        } catch {
            throw outOfSpace(error)
        }
    }

    /// Runs `body` in a read-only snapshot transaction: it sees the store as
    /// of its start and takes no read locks, so it never waits for a writer.
    /// Without ``Configuration/snapshotReads`` it reads committed data instead,
    /// holding each read lock only for the read.
    func snapshot<T>(_ body: (Txn) throws -> T) throws -> T {
        if replicationState != nil {
            do { return try readTransaction(body) } catch { throw outOfSpace(error) }
        }
        if let snapshots {
            let snapshot = try snapshots.take()
            let result: T
            do {
                result = try body(snapshot.txn)
            } catch {
                snapshots.discard(snapshot)
                throw outOfSpace(error)
            }
            snapshots.giveBack(snapshot)
            return result
        }
        var txn: Txn?
        let isolation = configuration.snapshotReads ? durus_DB_TXN_SNAPSHOT : durus_DB_READ_COMMITTED
        try Engine.check(durus_txn_begin(env, &txn, isolation), "begin a snapshot")
        let result: T
        do {
            result = try body(txn!)
        } catch {
            _ = durus_txn_abort(txn)
            // A read can need a page written out of the cache to make room.
            throw outOfSpace(error)
        }
        // A failed commit frees the handle too: it must not be aborted after.
        try Engine.check(durus_txn_commit(txn, 0), "end a snapshot")
        return result
    }

    /// Throws unless this open may change the store: not ``Configuration/readOnly``
    /// and not ``Configuration/migrationOnly`` (whose tables are not logged).
    func requireWritable() throws {
        if configuration.readOnly { throw DurusError.readOnly }
        if replicationState != nil, durus_rep_role(env) != durus_role_master { throw ReplicationError.notMaster(master: master) }
        if configuration.migrationOnly {
            throw DurusError.io(path: path, message: "opened for migration only: open it again without Configuration.migrationOnly to change it")
        }
    }
}

import CBerkeleyDB
import Durus
import Foundation

extension BerkeleyDBStorage {
    /// Copies the store into `directory` while it keeps serving loads and
    /// commits: Berkeley DB's hot backup (the databases, then every log file
    /// written meanwhile), then catastrophic recovery over the copy, which
    /// brings it to the state after the last commit the copied logs hold.
    /// The result opens as a store of its own and verifies clean; it holds
    /// every commit that returned before the backup began.
    ///
    /// ```swift
    /// try storage.backup(to: "/backups/store-2026-12-01")
    /// let copy = try BerkeleyDBStorage(path: "/backups/store-2026-12-01")
    /// ```
    ///
    /// No store of this library removes log files while a backup runs, in
    /// this process or another: the backup holds
    /// `backup.lock` in the store's directory shared, and log removal needs
    /// it exclusively (and skips a round when it cannot have it), so
    /// `durus backup` beside a running server copies every log it needs.
    ///
    /// - Throws: `DurusError.io(path:message:)` when `directory`
    ///   exists and is not empty or cannot be created; `DurusError.diskFull(path:message:)`
    ///   naming `directory` when its disk fills up, or a Berkeley DB error,
    ///   when copying or recovery fails (the partial copy is then removed).
    public func backup(to directory: String) throws {
        try reading { () throws in
            let files = FileManager.default
            if let existing = try? files.contentsOfDirectory(atPath: directory), !existing.isEmpty {
                throw DurusError.io(path: directory, message: "exists and is not empty: back up into a new directory")
            }
            do {
                try files.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw Self.directoryFailure(error, directory)
            }
            let lock = Self.openBackupLock(path)
            if lock >= 0 { _ = flock(lock, LOCK_SH) }   // waits only for a removal under way
            defer { if lock >= 0 { Foundation.close(lock) } }
            do {
                try Engine.check(durus_env_backup(env, directory, durus_DB_CREATE), "back up into \(directory)")
                try Engine.check(durus_env_recover_backup(directory), "recover the backup in \(directory)")
            } catch {
                try? files.removeItem(atPath: directory)
                throw Self.backupFailure(error, directory)
            }
        }
    }

    /// A failed copy or recovery: a full disk is `DurusError.diskFull(path:message:)`
    /// naming the backup. Berkeley DB's copy returns EPERM for any failed
    /// write and says why only in its diagnostic (its own, since the copy
    /// runs on this thread), ending with the write's strerror.
    static func backupFailure(_ error: any Error, _ directory: String) -> any Error {
        if let engine = error as? BerkeleyDBError, engine.code == EPERM,
           [ENOSPC, EDQUOT].contains(where: { engine.message.hasSuffix(String(cString: strerror($0)) + ")") }) {
            return DurusError.diskFull(path: directory, message: "\(engine.operation): \(engine.message)")
        }
        return outOfSpace(error, at: directory)
    }

    /// Foundation's error for a directory it could not make, as a `DurusError`.
    static func directoryFailure(_ error: any Error, _ directory: String) -> DurusError {
        let posix = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError).flatMap { $0.domain == NSPOSIXErrorDomain ? $0.code : nil }
        let message = "cannot create the directory: \((error as NSError).localizedDescription)"
        if (error as? CocoaError)?.code == .fileWriteOutOfSpace || posix == Int(ENOSPC) || posix == Int(EDQUOT) {
            return .diskFull(path: directory, message: message)
        }
        return .io(path: directory, message: message)
    }

    /// Removes the log files recovery no longer needs, unless a backup in
    /// any process is copying them (see ``backup(to:)``).
    func removeUnusedLogs() throws {
        let lock = Self.openBackupLock(path)
        defer { if lock >= 0 { Foundation.close(lock) } }
        if lock >= 0, flock(lock, LOCK_EX | LOCK_NB) != 0 { return }
        try Engine.check(durus_env_log_remove_unused(env), "remove old log files")
    }

    /// The store's `backup.lock`, created when missing; opened read-only
    /// when the directory is not writable (a lock needs no write access);
    /// -1 when it cannot be opened at all.
    static func openBackupLock(_ path: String) -> Int32 {
        let lockPath = path + "/backup.lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        return fd >= 0 ? fd : open(lockPath, O_RDONLY | O_CLOEXEC)
    }
}

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
    /// Log files are not removed in this process while a backup runs. A
    /// backup taken by another process (`durus backup` beside a server) may
    /// fail if the server removes a log file it still needed; run it again.
    ///
    /// - Throws: ``Durus/DurusError/io(path:message:)`` when `directory`
    ///   exists and is not empty; a Berkeley DB error when copying or
    ///   recovery fails (the partial copy is then removed).
    public func backup(to directory: String) throws {
        try reading { () throws in
            let files = FileManager.default
            if let existing = try? files.contentsOfDirectory(atPath: directory), !existing.isEmpty {
                throw DurusError.io(path: directory, message: "exists and is not empty: back up into a new directory")
            }
            try files.createDirectory(atPath: directory, withIntermediateDirectories: true)
            backupsRunning.add(1, ordering: .acquiringAndReleasing)
            defer { backupsRunning.subtract(1, ordering: .acquiringAndReleasing) }
            do {
                try Engine.check(durus_env_backup(env, directory, durus_DB_CREATE), "back up into \(directory)")
                try Engine.check(durus_env_recover_backup(directory), "recover the backup in \(directory)")
            } catch {
                try? files.removeItem(atPath: directory)
                throw error
            }
        }
    }
}

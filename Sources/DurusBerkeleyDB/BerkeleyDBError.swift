import CBerkeleyDB
import Synchronization

/// A Berkeley DB call failed for a reason that is not one of `DurusError`'s.
///
/// `code` is Berkeley DB's (or the system's `errno`) return code and `message`
/// its explanation, with the environment's own diagnostic when it printed one.
public struct BerkeleyDBError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Berkeley DB's return code.
    public var code: Int32
    /// What was being done.
    public var operation: String
    /// Berkeley DB's explanation.
    public var message: String

    /// True when Berkeley DB asks for recovery: the store must be closed and
    /// opened again (recovery then runs by itself).
    public var needsRecovery: Bool { code == durus_DB_RUNRECOVERY }

    public var description: String { "Berkeley DB: \(operation) failed (\(code)): \(message)" }
}

/// The last diagnostic Berkeley DB printed, kept for the next error thrown.
private let lastDiagnostic = Mutex<String>("")

let captureDiagnostic: durus_errcall = { _, _, message in
    guard let message else { return }
    let text = String(cString: message)
    lastDiagnostic.withLock { $0 = text }
}

enum Engine {
    /// Throws a ``BerkeleyDBError`` when `code` is not 0.
    @inline(__always)
    static func check(_ code: Int32, _ operation: @autoclosure () -> String) throws(BerkeleyDBError) {
        if code != 0 { throw error(code, operation()) }
    }

    static func error(_ code: Int32, _ operation: String) -> BerkeleyDBError {
        var message = String(cString: durus_strerror(code))
        let diagnostic = lastDiagnostic.withLock { value in
            defer { value = "" }
            return value
        }
        if !diagnostic.isEmpty { message += " (\(diagnostic))" }
        return BerkeleyDBError(code: code, operation: operation, message: message)
    }

    /// A new handle in `env`, set up by `prepare`, then opened on `file`
    /// (nil: a private, unnamed table) with `flags`; closed again when
    /// either fails. `name` names the table in errors.
    static func openHandle(_ env: UnsafeMutablePointer<DB_ENV>, file: String?, name: String, type: DBTYPE,
                           flags: UInt32, mode: Int32 = 0o644,
                           prepare: (UnsafeMutablePointer<DB>) throws -> Void = { _ in }) throws -> UnsafeMutablePointer<DB> {
        var handle: UnsafeMutablePointer<DB>?
        try check(durus_db_create(&handle, env), "create a handle for \(name)")
        guard let db = handle else { throw BerkeleyDBError(code: -1, operation: "create a handle for \(name)", message: "no handle") }
        do {
            try prepare(db)
            try check(durus_db_open(db, nil, file, type, flags, mode), "open \(name)")
        } catch {
            _ = durus_db_close(db)
            throw error
        }
        return db
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A storage in one Durus file: SHELF-1, the format of Durus 4.x's
/// FileStorage, read and written so Python Durus reads it back; or DFS20,
/// Durus 3.x's FileStorage2, read-only.
///
/// Opening reads the file's offset map and scans only the transactions after
/// it, keeping an index of OID → file offset; loads read one record with
/// `pread`. A commit appends one transaction. Like Durus's FileStorage, it
/// does not fsync on commit (a power cut may lose the last commits, and
/// leaves at worst a torn last transaction, which `repair` truncates); set
/// ``Options/syncOnCommit`` to fsync every commit. ``pack()`` writes the
/// reachable records to a new file, fsyncs it and renames it over the old.
///
/// A writer holds an exclusive `flock` on the file, as Durus does, so a second
/// writer (Swift or Python) cannot open it. Read-only opens take no lock.
///
/// ```swift
/// let storage = try FileStorage(path: "/var/db/app.durus")
/// let root = try storage.newOID()
/// try storage.commit([Record(oid: root, data: Array("hello".utf8), references: [])])
/// try storage.close()
///
/// let old = try FileStorage(path: "old-3x.durus", options: .init(readOnly: true))
/// old.format    // .dfs20
/// ```
public final class FileStorage: Storage {
    /// The layout of a Durus file.
    public enum Format: Sendable, Equatable {
        /// Durus 4.x FileStorage (`SHELF-1`): read and written.
        case shelf1
        /// Durus 3.x FileStorage2 (`DFS20`): read only.
        case dfs20
    }

    /// How to open the file.
    public struct Options: Sendable {
        /// Open without locking or changing the file. DFS20 files always open
        /// read-only.
        public var readOnly: Bool
        /// Truncate a torn last transaction (one cut off by a crash) instead
        /// of throwing ``DurusError/tornTransaction(path:offset:)``. Earlier
        /// transactions are never touched. Ignored when read-only.
        public var repair: Bool
        /// Create an empty SHELF-1 file when none exists.
        public var create: Bool
        /// fsync after every commit. Durus never does; off by default.
        public var syncOnCommit: Bool

        public init(readOnly: Bool = false, repair: Bool = false, create: Bool = true, syncOnCommit: Bool = false) {
            self.readOnly = readOnly
            self.repair = repair
            self.create = create
            self.syncOnCommit = syncOnCommit
        }
    }

    /// What opening the file read: the work startup did.
    public struct OpenStatistics: Sendable, Equatable {
        /// Records found in the offset map (SHELF-1), not read at open.
        public var offsetMapEntries = 0
        /// Transactions scanned: those after the offset map (SHELF-1), or all
        /// of them (DFS20).
        public var transactionsScanned = 0
        /// Record headers read by that scan.
        public var recordsScanned = 0
        /// Where `repair` truncated a torn last transaction, if it did.
        public var truncatedAt: Int?
    }

    /// The file's path.
    public let path: String
    /// The file's layout.
    public let format: Format
    /// Whether commits, `newOID()` and `pack()` throw ``DurusError/readOnly``.
    public let isReadOnly: Bool
    /// What opening the file read.
    public let openStatistics: OpenStatistics

    private let syncOnCommit: Bool

    private struct State {
        /// nil once closed.
        var file: OpenFile?
        var index: OffsetIndex
        /// Where the next transaction goes.
        var end: Int
        var nextOID: UInt64
        var invalidations: [OID] = []
    }

    private let state: Mutex<State>

    /// Opens the Durus file at `path`, creating an empty SHELF-1 file when
    /// there is none and ``Options/create`` is set.
    ///
    /// - Throws: ``DurusError/tornTransaction(path:offset:)`` when the file
    ///   ends inside a transaction and `repair` is off;
    ///   ``DurusError/corruptFile(path:offset:reason:)`` for a file that is
    ///   empty, of another kind, or damaged before its end;
    ///   ``DurusError/storeInUse(path:)`` when another writer has it open;
    ///   ``DurusError/io(path:message:)`` when it cannot be opened.
    public init(path: String, options: Options = .init()) throws {
        let file = try OpenFile.open(path, options: options)
        let size = try file.size()
        let head = try file.read(ShelfFormat.prefix.count, at: 0)
        let opened: Opened
        if head == ShelfFormat.prefix {
            format = .shelf1
            isReadOnly = options.readOnly
            if !isReadOnly { try file.lock() }
            opened = try Self.openShelf(file, size: size, repair: options.repair && !isReadOnly)
        } else if head.starts(with: ShelfFormat.dfs20Magic) {
            format = .dfs20
            isReadOnly = true
            opened = try Self.openDFS20(file, size: size)
        } else {
            throw DurusError.corruptFile(path: path, offset: 0, reason: size == 0
                ? "the file is empty (0 bytes), not a Durus file"
                : "not a Durus file: it starts with neither SHELF-1 nor DFS20")
        }
        self.path = path
        syncOnCommit = options.syncOnCommit
        openStatistics = opened.statistics
        let nextOID = max(UInt64(opened.index.slotCount), opened.index.highest.map { $0.rawValue + 1 } ?? 0)
        state = Mutex(State(file: file, index: opened.index, end: opened.end, nextOID: nextOID))
    }

    /// The number of records stored.
    public var count: Int { state.withLock { $0.index.count } }

    /// ``count``: what a migration from this file copies.
    public var estimatedRecordCount: Int? { count }

    public func load(_ oid: OID) throws -> Record {
        let (file, offset, end) = try state.withLock { state throws(DurusError) in
            guard let file = state.file else { throw .closed }
            guard let offset = state.index[oid] else { throw .keyNotFound(oid) }
            return (file, offset, state.end)
        }
        return try readRecord(oid, at: offset, in: file, end: end)
    }

    /// The next OID above every OID in the file (and above the offset map's
    /// slots, which a pack keeps). Unlike Durus, it never reuses holes.
    /// OIDs handed out but never committed may come again after reopening.
    public func newOID() throws -> OID {
        try state.withLock { state throws(DurusError) in
            _ = try writableFile(state)
            defer { state.nextOID += 1 }
            return OID(state.nextOID)
        }
    }

    public func newOIDs(count: Int) throws -> [OID] {
        try state.withLock { state throws(DurusError) in
            _ = try writableFile(state)
            defer { state.nextOID += UInt64(count) }
            return (0 ..< UInt64(count)).map { OID(state.nextOID + $0) }
        }
    }

    public func commit(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws {
        try append(records, handleInvalidations: handleInvalidations, sync: syncOnCommit)
    }

    /// Commits as ``commit(_:handleInvalidations:)`` does; with
    /// ``Options/syncOnCommit``, the fsync is the wait handed back.
    public func commitAwaitingFlush(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws
        -> PendingFlush? {
        try append(records, handleInvalidations: handleInvalidations, sync: false)
        guard syncOnCommit, !records.isEmpty else { return nil }
        return { [self] in try state.withLock { state throws(DurusError) in try writableFile(state).sync() } }
    }

    private func append(_ records: [Record], handleInvalidations: ([OID]) throws -> Void, sync: Bool) throws {
        _ = try state.withLock { state throws(DurusError) in try writableFile(state) }
        try handleInvalidations([])
        try state.withLock { state in
            let file = try writableFile(state)
            let storing = Set(records.map(\.oid))
            for record in records {
                guard record.oid.rawValue < state.nextOID else { throw DurusError.oidNotAllocated(record.oid) }
                let missing = record.referenceSet.filter { state.index[$0] == nil && !storing.contains($0) }
                if !missing.isEmpty { throw ConflictError(.write, oids: missing.sorted()) }
            }
            guard !records.isEmpty else { return }
            let transaction = ShelfFormat.transaction(records)
            do {
                try file.write(transaction, at: state.end)
                if sync { try file.sync() }
            } catch {
                try? file.truncate(to: state.end)
                throw error
            }
            var position = state.end + 8
            for record in records {
                state.index.set(record.oid, at: position)
                position += 16 + record.bytes.count
            }
            state.end += transaction.count
        }
    }

    /// The OIDs the last ``pack()`` collected; nothing else, since no other
    /// process writes this file.
    public func sync() throws -> [OID] {
        try state.withLock { state throws(DurusError) in
            guard state.file != nil else { throw .closed }
            defer { state.invalidations = [] }
            return state.invalidations
        }
    }

    /// Rewrites the file with only the records reachable from the root, as
    /// Durus's pack does: into `path.pack`, fsynced, then renamed over the
    /// file. Other calls wait while it runs. The offset map keeps a slot for
    /// every OID handed out, so collected OIDs are never handed out again.
    public func pack() throws {
        try state.withLock { state throws(DurusError) in
            let file = try writableFile(state)
            let packPath = path + ".pack"
            let packed = try OpenFile.create(packPath)
            do throws(DurusError) {
                var slots = [Int](repeating: -1, count: Int(state.nextOID))
                var buffer = ShelfFormat.prefix + ShelfFormat.u64(0)
                var written = 0
                var pending: [OID] = state.index[.root] == nil ? [] : [.root]
                var seen = Set(pending)
                var highest = -1
                while let oid = pending.popLast() {
                    let record = try readRecord(oid, at: state.index[oid]!, in: file, end: state.end)
                    slots[Int(oid.rawValue)] = written + buffer.count
                    highest = max(highest, Int(oid.rawValue))
                    buffer += ShelfFormat.item(record)
                    for reference in record.references where state.index[reference] != nil && seen.insert(reference).inserted {
                        pending.append(reference)
                    }
                    if buffer.count >= 1 << 20 {
                        try packed.write(buffer, at: written)
                        written += buffer.count
                        buffer.removeAll(keepingCapacity: true)
                    }
                }
                try packed.write(buffer, at: written)
                written += buffer.count
                try packed.write(ShelfFormat.u64(written - 16), at: ShelfFormat.prefix.count)
                // Durus walks the holes from the last slot, so it must be one.
                if highest == slots.count - 1 { slots.append(-1) }
                let map = ShelfFormat.offsetMap(start: written, slots: slots)
                try packed.write(map, at: written)
                try packed.sync()
                guard rename(packPath, path) == 0 else {
                    throw .io(path: path, message: "cannot rename \(packPath) over it: \(String(cString: strerror(errno)))")
                }
                OpenFile.syncDirectory(of: path)
                let collected = state.index.oids.filter { slots[Int($0.rawValue)] < 0 }
                state.invalidations += collected.sorted()
                state.index = OffsetIndex(slots: slots)
                state.file = packed
                state.end = written + map.count
            } catch {
                unlink(packPath)
                throw error
            }
        }
    }

    public func forEachRecord(_ body: (Record) throws -> Void) throws {
        let oids = try state.withLock { state throws(DurusError) in
            guard state.file != nil else { throw .closed }
            return state.index.oids
        }
        for oid in oids {
            let record: Record
            do {
                record = try load(oid)
            } catch DurusError.keyNotFound {
                continue   // collected by a pack since the snapshot
            }
            try body(record)
        }
    }

    /// Closes the file and releases its lock. Closing again does nothing.
    public func close() throws {
        state.withLock { $0.file = nil }
    }

    private func writableFile(_ state: borrowing State) throws(DurusError) -> OpenFile {
        guard let file = state.file else { throw .closed }
        guard !isReadOnly else { throw .readOnly }
        return file
    }

    /// The record filed under `oid` at `offset`: an item (SHELF-1) or a
    /// length-prefixed record (DFS20).
    private func readRecord(_ oid: OID, at offset: Int, in file: OpenFile, end: Int) throws(DurusError) -> Record {
        let lengthSize = format == .shelf1 ? 8 : 4
        let nameSize = format == .shelf1 ? 8 : 0
        let head = try file.read(lengthSize, at: offset)
        let length = head.count < lengthSize ? 0
            : format == .shelf1 ? ShelfFormat.u64(head, at: 0) : UInt64(ShelfFormat.u32(head, at: 0))
        guard length >= nameSize + 12, ShelfFormat.end(offset + lengthSize, plus: length) <= end else {
            throw .corruptFile(path: path, offset: offset, reason: "no record of \(oid) here")
        }
        let body = try file.read(Int(length), at: offset + lengthSize)
        guard body.count == length, body.prefix(nameSize).elementsEqual(oid.bytes.prefix(nameSize)) else {
            throw .corruptFile(path: path, offset: offset, reason: "no record of \(oid) here")
        }
        return try ShelfFormat.record(oid, Array(body[nameSize...]), path: path, offset: offset)
    }
}

// MARK: - Opening

extension FileStorage {
    private struct Opened {
        var index = OffsetIndex()
        var statistics = OpenStatistics()
        var end = 0
        private var pending: [(OID, Int)] = []

        /// Indexes the items of each transaction `next` yields once that
        /// transaction is complete.
        mutating func scan(_ next: () throws(DurusError) -> TransactionEvent?) throws(DurusError) {
            while let event = try next() {
                switch event {
                case .item(let oid, let offset, _):
                    pending.append((oid, offset))
                case .committed:
                    for (oid, offset) in pending { index.set(oid, at: offset) }
                    statistics.transactionsScanned += 1
                    statistics.recordsScanned += pending.count
                    pending = []
                }
            }
        }
    }

    /// Reads the offset map, then scans the transactions after it.
    private static func openShelf(_ file: OpenFile, size: Int, repair: Bool) throws(DurusError) -> Opened {
        let map = try OffsetMapLocation(file, size: size)
        var opened = Opened()
        var slots = [Int](repeating: -1, count: map.count)
        try map.forEachEntry(file) { slot, offset throws(DurusError) in
            slots[slot] = offset
            opened.statistics.offsetMapEntries += 1
        }
        opened.index = OffsetIndex(slots: slots)
        var transactions = ShelfTransactions(file, from: map.end, to: size)
        opened.end = size
        do {
            try opened.scan { () throws(DurusError) in try transactions.next() }
        } catch DurusError.tornTransaction(_, let offset) where repair {
            try file.truncate(to: offset)
            opened.statistics.truncatedAt = offset
            opened.end = offset
        }
        return opened
    }

    /// Scans every DFS20 transaction, skipping the index block (reading its
    /// pickle would save no reads: the records behind it are scanned anyway).
    private static func openDFS20(_ file: OpenFile, size: Int) throws(DurusError) -> Opened {
        let layout = try DFS20Layout(file, size: size)
        var opened = Opened()
        var before = DFS20Transactions(file, from: 14, to: layout.indexStart, atEnd: false)
        try opened.scan { () throws(DurusError) in try before.next() }
        var after = DFS20Transactions(file, from: layout.afterIndex, to: size, atEnd: true)
        try opened.scan { () throws(DurusError) in try after.next() }
        opened.end = size
        return opened
    }
}

// MARK: - The index

/// OID → item offset: the offset map's slots as read at open (or written by
/// a pack), overlaid with the transactions after it. A flat array keeps the
/// common case, a packed file, at 8 bytes per OID.
struct OffsetIndex {
    private var slots: [Int]
    private var overlay: [OID: Int] = [:]
    private(set) var count: Int
    private(set) var highest: OID?

    /// `slots[n]` is the offset of OID `n`, or -1.
    init(slots: [Int] = []) {
        self.slots = slots
        count = slots.count(where: { $0 >= 0 })
        highest = slots.lastIndex { $0 >= 0 }.map { OID(UInt64($0)) }
    }

    /// The number of slots of the offset map.
    var slotCount: Int { slots.count }

    subscript(oid: OID) -> Int? {
        if let offset = overlay[oid] { return offset }
        let slot = Int(clamping: oid.rawValue)
        return slot < slots.count && slots[slot] >= 0 ? slots[slot] : nil
    }

    /// Files `oid` at `offset`, over any earlier record.
    mutating func set(_ oid: OID, at offset: Int) {
        if self[oid] == nil { count += 1 }
        overlay[oid] = offset
        highest = max(highest ?? oid, oid)
    }

    var oids: [OID] {
        var oids = Array(overlay.keys)
        for slot in slots.indices where slots[slot] >= 0 && overlay[OID(UInt64(slot))] == nil {
            oids.append(OID(UInt64(slot)))
        }
        return oids
    }
}

// MARK: - The file

/// A file descriptor closed when its last user lets go, so a load that
/// raced a pack or a close still reads the file its offset came from.
final class OpenFile: Sendable {
    let fd: Int32
    let path: String

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { Glibc.close(fd) }

    /// Opens `path`, creating an empty SHELF-1 file when allowed.
    static func open(_ path: String, options: FileStorage.Options) throws(DurusError) -> OpenFile {
        let fd = Glibc.open(path, (options.readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC)
        if fd >= 0 { return OpenFile(fd: fd, path: path) }
        guard errno == ENOENT, options.create, !options.readOnly else {
            throw .io(path: path, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        let file = try create(path, exclusive: true)
        try file.write(ShelfFormat.emptyFile, at: 0)
        return file
    }

    /// Creates (or empties) `path` and locks it.
    static func create(_ path: String, exclusive: Bool = false) throws(DurusError) -> OpenFile {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : 0), 0o644)
        guard fd >= 0 else { throw .io(path: path, message: "cannot create: \(String(cString: strerror(errno)))") }
        let file = OpenFile(fd: fd, path: path)
        try file.lock()
        try file.truncate(to: 0)
        return file
    }

    /// Makes a rename in the directory of `path` durable. Best effort: the
    /// renamed file itself was already synced.
    static func syncDirectory(of path: String) {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let fd = Glibc.open(directory.isEmpty ? "/" : directory, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        Glibc.close(fd)
    }

    /// Takes the exclusive lock Durus's writers take. A lock that stays
    /// taken for 250 ms is another writer's: a process this program is
    /// starting holds a copy of every descriptor (and so of a lock released
    /// meanwhile) only until it runs its program.
    func lock() throws(DurusError) {
        var waited = 0
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else { throw failure("cannot lock") }
            guard waited < 250 else { throw .storeInUse(path: path) }
            usleep(5_000)
            waited += 5
        }
    }

    /// Up to `count` bytes at `offset`: fewer at the end of the file.
    func read(_ count: Int, at offset: Int) throws(DurusError) -> [UInt8] {
        guard count > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw failure("read at offset \(offset) failed") }
            if n == 0 { break }
            done += n
        }
        bytes.removeLast(count - done)
        return bytes
    }

    func write(_ bytes: [UInt8], at offset: Int) throws(DurusError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
            if n < 0, errno == EINTR { continue }
            if n == 0 { errno = EIO }   // no progress and no error: report one
            guard n > 0 else { throw failure("write at offset \(offset) failed") }
            done += n
        }
    }

    func size() throws(DurusError) -> Int {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("cannot stat") }
        return Int(info.st_size)
    }

    func truncate(to size: Int) throws(DurusError) {
        guard ftruncate(fd, off_t(size)) == 0 else { throw failure("cannot truncate to \(size) bytes") }
    }

    func sync() throws(DurusError) {
        guard fsync(fd) == 0 else { throw failure("fsync failed") }
    }

    func failure(_ what: String) -> DurusError {
        let code = errno   // before anything below can change it
        let message = "\(what): \(String(cString: strerror(code)))"
        return code == ENOSPC || code == EDQUOT ? .diskFull(path: path, message: message) : .io(path: path, message: message)
    }
}

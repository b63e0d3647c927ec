import Synchronization

/// A Durus file read front to back, with no index: the source for migrating
/// a file of any size in flat memory.
///
/// Unlike ``FileStorage``, which keeps an OID → offset index of the whole
/// file, a scan holds only a bounded read buffer (1 MiB, or one record when a
/// record is bigger). ``forEachRecord(_:)`` yields every record in the file
/// in file order, superseded and unreachable ones included: a later record
/// for an OID is newer than an earlier one, so a consumer that lets the last
/// one win (as `BerkeleyDBStorage.migrate(from:batchSize:progress:)` does)
/// ends with exactly the records ``FileStorage`` loads, and a mark from the
/// root drops the unreachable. A SHELF-1 scan walks the transactions before
/// and after the offset map; a DFS20 scan those around the index block.
///
/// It is a one-pass source for a migration, not a storage: it cannot load
/// one record or store any.
///
/// ```swift
/// let scan = try FileScan(path: "data.durus")
/// try scan.forEachRecord { record in print(record.oid) }
/// ```
public final class FileScan: MigrationSource, Sendable {
    /// The file's path.
    public let path: String
    /// The file's layout.
    public let format: FileStorage.Format
    /// The number of records the offset map lists (SHELF-1): the records as
    /// of the file's last pack, which a scan yields before those committed
    /// since. A cheap estimate of the work; nil for DFS20.
    public let estimatedRecordCount: Int?

    /// nil once closed.
    private let file: Mutex<OpenFile?>

    /// Opens the file at `path` and checks its header (the offset map or the
    /// index block's position); the transactions are checked as they are read.
    ///
    /// - Throws: ``DurusError/corruptFile(path:offset:reason:)`` for a file
    ///   that is empty, of another kind, or with a damaged header;
    ///   ``DurusError/io(path:message:)`` when it cannot be opened.
    public init(path: String) throws {
        let file = try OpenFile.open(path, options: .init(readOnly: true, create: false))
        let size = try file.size()
        let head = try file.read(ShelfFormat.prefix.count, at: 0)
        if head == ShelfFormat.prefix {
            format = .shelf1
            var entries = 0
            try OffsetMapLocation(file, size: size).forEachEntry(file) { _, _ throws(DurusError) in entries += 1 }
            estimatedRecordCount = entries
        } else if head.starts(with: ShelfFormat.dfs20Magic) {
            format = .dfs20
            _ = try DFS20Layout(file, size: size)
            estimatedRecordCount = nil
        } else {
            throw DurusError.corruptFile(path: path, offset: 0, reason: size == 0
                ? "the file is empty (0 bytes), not a Durus file"
                : "not a Durus file: it starts with neither SHELF-1 nor DFS20")
        }
        self.path = path
        self.file = Mutex(file)
    }

    /// Calls `body` with every record in the file, in file order, superseded
    /// ones included (see ``FileScan``). Each call reads the file again, up
    /// to its size when the call starts.
    ///
    /// - Throws: ``DurusError/tornTransaction(path:offset:)`` on reaching a
    ///   transaction cut off at the end of the file, and
    ///   ``DurusError/corruptFile(path:offset:reason:)`` on reaching damage,
    ///   after yielding every record before it; whatever `body` throws.
    public func forEachRecord(_ body: (Record) throws -> Void) throws {
        let file = try file.withLock { file throws(DurusError) in
            guard let file else { throw .closed }
            return file
        }
        let size = try file.size()
        let bytes = ReadAhead(file)
        switch format {
        case .shelf1:
            let map = try OffsetMapLocation(bytes, size: size)
            // The first transaction (8 ..< the map) holds what the last pack kept.
            var before = ShelfTransactions(bytes, from: 8, to: map.start)
            try yieldRecords(bytes, body) { () throws(DurusError) in try before.next() }
            var after = ShelfTransactions(bytes, from: map.end, to: size)
            try yieldRecords(bytes, body) { () throws(DurusError) in try after.next() }
        case .dfs20:
            let layout = try DFS20Layout(bytes, size: size)
            var before = DFS20Transactions(bytes, from: 14, to: layout.indexStart, atEnd: false)
            try yieldRecords(bytes, body) { () throws(DurusError) in try before.next() }
            var after = DFS20Transactions(bytes, from: layout.afterIndex, to: size, atEnd: true)
            try yieldRecords(bytes, body) { () throws(DurusError) in try after.next() }
        }
    }

    /// Reads the record of each item `next` meets.
    private func yieldRecords(_ bytes: ReadAhead, _ body: (Record) throws -> Void,
                              _ next: () throws(DurusError) -> TransactionEvent?) throws {
        // SHELF-1 items are a u64 length, the OID and the record; DFS20 ones a u32 length and the record.
        let (lengthSize, recordStart) = format == .shelf1 ? (8, 16) : (4, 4)
        while let event = try next() {
            guard case .item(let oid, let offset, let length) = event else { continue }
            let recordLength = lengthSize + length - recordStart
            let recordBytes = try bytes.read(recordLength, at: offset + recordStart)
            guard recordBytes.count == recordLength else {
                throw DurusError.corruptFile(path: path, offset: offset, reason: "the file shrank while it was read")
            }
            try body(try ShelfFormat.record(oid, recordBytes, path: path, offset: offset))
        }
    }

    /// Closes the file. Closing again does nothing.
    public func close() throws {
        file.withLock { $0 = nil }
    }
}

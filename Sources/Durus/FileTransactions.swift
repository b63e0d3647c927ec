/// Walks the transactions of Durus files: shared by ``FileStorage`` (which
/// indexes them at open) and ``FileScan`` (which streams their records), so a
/// file is judged the same way, with the same errors, by both.

/// Bytes of a Durus file by offset.
protocol FileBytes {
    var path: String { get }
    /// Up to `count` bytes at `offset`: fewer at the end of the file.
    func read(_ count: Int, at offset: Int) throws(DurusError) -> [UInt8]
}

extension OpenFile: FileBytes {}

/// Reads a file front to back through a window that slides forward: one
/// `pread` per window however small the reads, and memory bounded by the
/// window (or by the largest single read, a record bigger than the window).
final class ReadAhead: FileBytes {
    private let file: OpenFile
    private let window: Int
    private var buffer: [UInt8] = []
    private var start = 0

    init(_ file: OpenFile, window: Int = 1 << 20) {
        self.file = file
        self.window = window
    }

    var path: String { file.path }

    func read(_ count: Int, at offset: Int) throws(DurusError) -> [UInt8] {
        if offset < start || offset + count > start + buffer.count {
            buffer = try file.read(max(window, count), at: offset)
            start = offset
        }
        let from = offset - start
        return Array(buffer[from ..< min(buffer.count, from + count)])
    }
}

/// What a walk over transactions meets, in file order.
enum TransactionEvent {
    /// An item whose header was checked: the record of `oid`, `length` bytes
    /// after its length field (SHELF-1: the OID and the record; DFS20: the
    /// record), at `offset`.
    case item(oid: OID, offset: Int, length: Int)
    /// The transaction holding the items since the last one is complete.
    case committed
}

extension ShelfFormat {
    /// The record of `oid`, read from the item at `offset`.
    static func record(_ oid: OID, _ bytes: [UInt8], path: String, offset: Int) throws(DurusError) -> Record {
        do {
            return try Record(key: oid, bytes: bytes)
        } catch {
            throw .corruptFile(path: path, offset: offset, reason: "the record of \(oid) is damaged: \(error)")
        }
    }
}

// MARK: - SHELF-1

/// Where a SHELF-1 file's offset map stands: after the first transaction.
struct OffsetMapLocation {
    let start: Int
    let bytesPerWord: Int
    let count: Int

    /// Where the transactions after the map begin.
    var end: Int { start + 24 + count * bytesPerWord }

    /// Reads and checks the map's header.
    init(_ file: some FileBytes, size: Int) throws(DurusError) {
        let header = try file.read(16, at: 0)
        let mapStart = header.count == 16 ? ShelfFormat.end(16, plus: ShelfFormat.u64(header, at: 8)) : Int.max
        let mapHeader = try mapStart <= size - 24 ? file.read(24, at: mapStart) : []
        guard mapHeader.count == 24 else {
            throw .corruptFile(path: file.path, offset: 8, reason: "the first transaction's length does not lead to an offset map")
        }
        let bytesPerWord = ShelfFormat.u64(mapHeader, at: 8)
        let wordCount = ShelfFormat.u64(mapHeader, at: 16)
        guard (1 ... 8).contains(bytesPerWord), wordCount <= UInt64(size - mapStart) / bytesPerWord,
              ShelfFormat.u64(mapHeader, at: 0) == 16 + bytesPerWord * wordCount
        else {
            throw .corruptFile(path: file.path, offset: mapStart, reason: "garbage where the offset map should be")
        }
        start = mapStart
        self.bytesPerWord = Int(bytesPerWord)
        count = Int(wordCount)
    }

    /// Calls `body` with every slot that holds an item offset, reading the
    /// words in bounded chunks.
    func forEachEntry(_ file: some FileBytes, _ body: (_ slot: Int, _ offset: Int) throws(DurusError) -> Void) throws(DurusError) {
        let chunk = 1 << 16
        for first in stride(from: 0, to: count, by: chunk) {
            let words = min(chunk, count - first)
            let bytes = try file.read(words * bytesPerWord, at: start + 24 + first * bytesPerWord)
            guard bytes.count == words * bytesPerWord else {
                throw .corruptFile(path: file.path, offset: start, reason: "the offset map runs past the end of the file")
            }
            for slot in 0 ..< words {
                // Words at or above the map's offset link the holes.
                let word = ShelfFormat.word(bytes, at: slot * bytesPerWord, count: bytesPerWord)
                guard word < UInt64(start) else { continue }
                guard word >= 16 else {
                    throw .corruptFile(path: file.path, offset: start + 24 + (first + slot) * bytesPerWord,
                                       reason: "offset map entry \(word) points into the file header")
                }
                try body(first + slot, Int(word))
            }
        }
    }
}

/// The SHELF-1 transactions in `position ..< size`, checking every item
/// header as it goes. A file that ends inside a transaction throws
/// ``DurusError/tornTransaction(path:offset:)`` once the walk gets there.
struct ShelfTransactions<Bytes: FileBytes> {
    private let file: Bytes
    private let size: Int
    private var position: Int
    /// The transaction being walked.
    private var current: (start: Int, end: Int)?

    init(_ file: Bytes, from start: Int, to size: Int) {
        self.file = file
        self.size = size
        position = start
    }

    /// The next item or transaction end. A transaction that runs past the
    /// end of the file yields none of its items: the walk checks it through
    /// at once and throws what it finds, a torn transaction or garbage.
    mutating func next() throws(DurusError) -> TransactionEvent? {
        let event = try step()
        if case .item = event, let current, current.end > size {
            while true { _ = try step() }
        }
        return event
    }

    private mutating func step() throws(DurusError) -> TransactionEvent? {
        if current == nil {
            guard position < size else { return nil }
            current = try begin(at: position)
            position += 8
        }
        let (start, end) = current!
        let torn = DurusError.tornTransaction(path: file.path, offset: start)
        func garbage(_ offset: Int, _ what: String) -> DurusError {
            .corruptFile(path: file.path, offset: offset, reason: "\(what), in the transaction at offset \(start)")
        }
        guard position < min(end, size) else {
            guard end <= size else { throw torn }
            current = nil
            position = end
            return .committed
        }
        guard position + ShelfFormat.itemHeader <= end else {
            throw garbage(position, "a record header runs past the end of its transaction")
        }
        let header = try file.read(ShelfFormat.itemHeader, at: position)
        guard header.count == ShelfFormat.itemHeader else { throw torn }
        guard let (oid, length) = ShelfFormat.itemHeader(header) else {
            throw garbage(position, "garbage where a record should be")
        }
        let next = ShelfFormat.end(position + 8, plus: length)
        guard next <= end else { throw garbage(position, "a record runs past the end of its transaction") }
        guard next <= size else { throw torn }
        defer { position = next }
        return .item(oid: oid, offset: position, length: Int(length))
    }

    /// The transaction whose length stands at `start`.
    private func begin(at start: Int) throws(DurusError) -> (start: Int, end: Int) {
        let torn = DurusError.tornTransaction(path: file.path, offset: start)
        let lengthBytes = try file.read(8, at: start)
        guard lengthBytes.count == 8 else { throw torn }
        let length = ShelfFormat.u64(lengthBytes, at: 0)
        if length == 0, start + 8 < size, try isUnfinishedDurusCommit(from: start + 8) { throw torn }
        return (start, ShelfFormat.end(start + 8, plus: length))
    }

    /// Durus writes a zero length, then the items, then the real length: a
    /// zero length followed by items that run to the end of the file is a
    /// commit it never finished. (A real empty transaction is followed by
    /// another transaction's length, which is no item header.)
    private func isUnfinishedDurusCommit(from start: Int) throws(DurusError) -> Bool {
        var position = start
        while position < size {
            let header = try file.read(ShelfFormat.itemHeader, at: position)
            guard header.count == ShelfFormat.itemHeader else { return true }
            guard let (_, length) = ShelfFormat.itemHeader(header) else { return false }
            position = ShelfFormat.end(position + 8, plus: length)
        }
        return true
    }
}

// MARK: - DFS20

/// Where a DFS20 file's index block stands; the transactions lie before and
/// after it.
struct DFS20Layout {
    let indexStart: Int
    let afterIndex: Int

    init(_ file: some FileBytes, size: Int) throws(DurusError) {
        let header = try file.read(14, at: 0)
        let indexStart = header.count == 14 ? ShelfFormat.u64(header, at: 6) : 0
        guard indexStart >= 14, indexStart <= UInt64(max(size - 8, 0)) else {
            throw .corruptFile(path: file.path, offset: 6, reason: "the index offset \(indexStart) lies outside the file")
        }
        let indexLength = try file.read(8, at: Int(indexStart))
        let afterIndex = ShelfFormat.end(Int(indexStart) + 8, plus: ShelfFormat.u64(indexLength, at: 0))
        guard afterIndex <= size else {
            throw .corruptFile(path: file.path, offset: Int(indexStart), reason: "the index block runs past the end of the file")
        }
        self.indexStart = Int(indexStart)
        self.afterIndex = afterIndex
    }
}

/// The DFS20 transactions in `position ..< end`. Only the region at the end
/// of the file (`atEnd`) may hold a torn transaction; elsewhere one cut short
/// runs into the index block.
struct DFS20Transactions<Bytes: FileBytes> {
    private let file: Bytes
    private let end: Int
    private let atEnd: Bool
    private var position: Int
    private var transaction: Int
    /// Whether records were met since the last transaction's end.
    private var open = false
    /// Whether the transaction at `transaction` was checked through.
    private var checkedAhead = false

    init(_ file: Bytes, from start: Int, to end: Int, atEnd: Bool) {
        self.file = file
        self.end = end
        self.atEnd = atEnd
        position = start
        transaction = start
    }

    private func cutShort() -> DurusError {
        atEnd ? .tornTransaction(path: file.path, offset: transaction)
            : .corruptFile(path: file.path, offset: position, reason: "a transaction runs into the index block")
    }

    /// The next item or transaction end. At the end of the file, where a
    /// transaction may be torn, each is checked through before any of its
    /// items is yielded.
    mutating func next() throws(DurusError) -> TransactionEvent? {
        if atEnd, !open, !checkedAhead, position < end {
            var probe = self
            probe.checkedAhead = true
            while let event = try probe.next() {
                if case .committed = event { break }
            }
            checkedAhead = true
        }
        guard position < end else {
            if open { throw cutShort() }
            return nil
        }
        guard position + 4 <= end else { throw cutShort() }
        let header = try file.read(16, at: position)
        let length = ShelfFormat.u32(header, at: 0)
        if length == 0 {
            position += 4
            transaction = position
            open = false
            checkedAhead = false
            return .committed
        }
        guard position + 16 <= end, header.count == 16 else { throw cutShort() }
        let dataLength = ShelfFormat.u32(header, at: 12)
        guard length >= 12, 12 + dataLength <= length, (length - 12 - dataLength) % 8 == 0 else {
            throw .corruptFile(path: file.path, offset: position, reason: "garbage where a record should be")
        }
        guard position + 4 + length <= end else { throw cutShort() }
        open = true
        defer { position += 4 + length }
        return .item(oid: OID(ShelfFormat.u64(header, at: 4)), offset: position, length: length)
    }
}

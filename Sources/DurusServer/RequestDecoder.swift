import Durus
import NIOCore

/// Turns the bytes a client sends into ``ClientRequest``s, checking each
/// against the server's limits before anything is allocated for it.
///
/// A `NIOSingleStepByteToMessageDecoder`: it returns nil until a whole
/// request has arrived, however the bytes are split, and consumes exactly
/// the request it returns. After ``ClientRequest/commit`` the next request
/// is read as a transaction. The server's ``ClientHandler`` calls it one
/// request at a time (so it can stop between requests, for fairness and
/// backpressure); in a `ByteToMessageHandler` it decodes the same way.
struct RequestDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = ClientRequest

    /// What a request may ask for.
    struct Limits: Sendable {
        var maxBulkLoad: Int
        var maxTransactionSize: Int
        var maxRecordSize: Int
        /// Whether `E` is a request (on a replication site) or an unknown byte.
        var acceptsCommitLogEnd: Bool

        init(_ configuration: ServerConfiguration) {
            maxBulkLoad = configuration.maxBulkLoad
            maxTransactionSize = configuration.maxTransactionSize
            maxRecordSize = configuration.maxRecordSize
            acceptsCommitLogEnd = configuration.commitLogEnd != nil
        }
    }

    let limits: Limits
    /// True between a `C` and its transaction.
    private(set) var expectsTransaction = false

    init(limits: Limits) {
        self.limits = limits
    }

    /// The next whole request in `buffer`, consumed; nil when it has not
    /// all arrived (nothing is consumed then).
    ///
    /// - Throws: ``DurusError/protocolViolation(_:)`` for an unknown command
    ///   byte, a bulk load or transaction over the limits (as soon as its
    ///   count or length has arrived), and malformed transaction data.
    mutating func decode(buffer: inout ByteBuffer) throws -> ClientRequest? {
        if expectsTransaction { return try decodeTransaction(&buffer) }
        guard let byte = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
        if byte == WireProtocol.commitLogEndCommand, limits.acceptsCommitLogEnd {
            buffer.moveReaderIndex(forwardBy: 1)
            return .commitLogEnd
        }
        guard let command = WireProtocol.Command(rawValue: byte) else {
            throw DurusError.protocolViolation("unknown command byte \(byte)")
        }
        let start = buffer.readerIndex + 1
        let request: ClientRequest
        var length = 1
        switch command {
        case .version:
            guard let theirs = buffer.getInteger(at: start, as: UInt32.self) else { return nil }
            request = .version(theirs)
            length = 5
        case .newOID:
            request = .newOID
        case .newOIDs:
            guard let count = buffer.getInteger(at: start, as: UInt8.self) else { return nil }
            request = .newOIDs(count: Int(count))
            length = 2
        case .load:
            guard let oid = buffer.getInteger(at: start, as: UInt64.self) else { return nil }
            request = .load(OID(oid))
            length = 9
        case .bulkLoad:
            guard let count = buffer.getInteger(at: start, as: UInt32.self) else { return nil }
            guard count <= limits.maxBulkLoad else {
                throw DurusError.protocolViolation("a bulk load of \(count) OIDs is over the limit of \(limits.maxBulkLoad)")
            }
            guard let oids = buffer.getSlice(at: start + 4, length: 8 * Int(count)) else { return nil }
            buffer.moveReaderIndex(forwardBy: 5 + 8 * Int(count))
            return .bulkLoad(oids)
        case .commit:
            request = .commit
            expectsTransaction = true
        case .sync: request = .sync
        case .pack: request = .pack
        case .quit: request = .quit
        case .close: request = .close
        }
        buffer.moveReaderIndex(forwardBy: length)
        return request
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ClientRequest? {
        try decode(buffer: &buffer)
    }

    private mutating func decodeTransaction(_ buffer: inout ByteBuffer) throws -> ClientRequest? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length <= limits.maxTransactionSize else {
            throw DurusError.protocolViolation("a transaction of \(length) bytes is over the limit of \(limits.maxTransactionSize)")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        let data = buffer.readBytes(length: Int(length))!
        expectsTransaction = false
        let records = try WireProtocol.decodeTransaction(data)
        if let big = records.first(where: { $0.bytes.count > limits.maxRecordSize }) {
            throw DurusError.protocolViolation("the record of \(big.oid) has \(big.bytes.count) bytes, over the limit of \(limits.maxRecordSize)")
        }
        return .transaction(records, bytes: data.count)
    }
}

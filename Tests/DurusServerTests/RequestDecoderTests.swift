@testable import Durus
@testable import DurusServer
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

/// The server's request framing on its own: every request of protocol v1
/// decodes to its typed request however its bytes are split, nothing is
/// consumed before a request is whole, and bad input is refused with a
/// typed error as soon as it can be seen, after the requests before it.
@Suite struct RequestDecoderTests {
    static let limits = RequestDecoder.Limits(ServerConfiguration())

    static func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

    static func u32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
    static func u64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

    static let records = [
        record(OID(7), "seven", references: [OID(8)]),
        record(OID(8), "eight"),
    ]
    static let transaction = WireProtocol.encodeTransaction(records)

    /// Each request's bytes and what they decode to; self-contained pairs
    /// (a `C` with its transaction), so they may come in any order.
    static let requests: [([UInt8], [ClientRequest])] = [
        ([0x56] + u32(1), [.version(1)]),
        ([0x56] + u32(7), [.version(7)]),
        ([0x4E], [.newOID]),
        ([0x4D, 0], [.newOIDs(count: 0)]),
        ([0x4D, 255], [.newOIDs(count: 255)]),
        ([0x4C] + u64(0x0102_0304_0506_0708), [.load(OID(0x0102_0304_0506_0708))]),
        ([0x42] + u32(0), [.bulkLoad(ByteBuffer())]),
        ([0x42] + u32(3) + u64(1) + u64(2) + u64(3), [.bulkLoad(buffer(u64(1) + u64(2) + u64(3)))]),
        ([0x43] + u32(UInt32(transaction.count)) + transaction,
         [.commit, .transaction(records, bytes: transaction.count)]),
        ([0x43] + u32(0), [.commit, .transaction([], bytes: 0)]),
        ([0x53], [.sync]),
        ([0x50], [.pack]),
        ([0x51], [.quit]),
        ([0x2E], [.close]),
        ([0x45], [.commitLogEnd]),
    ]

    @Test func everyRequestHoweverItsBytesAreSplit() throws {
        var limits = Self.limits
        limits.acceptsCommitLogEnd = true
        // Fed whole, all at once, one byte at a time, in shuffled orders
        // (SwiftNIO's own check for decoders).
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: Self.requests.map { (Self.buffer($0.0), $0.1) },
            decoderFactory: { RequestDecoder(limits: limits) })
    }

    @Test func nothingIsConsumedBeforeARequestIsWhole() throws {
        var limits = Self.limits
        limits.acceptsCommitLogEnd = true
        for (bytes, expected) in Self.requests {
            var decoder = RequestDecoder(limits: limits)
            var decoded: [ClientRequest] = []
            var pending = ByteBuffer()
            for byte in bytes {
                pending.writeInteger(byte)
                let before = pending.readerIndex
                if let request = try decoder.decode(buffer: &pending) {
                    decoded.append(request)
                } else {
                    #expect(pending.readerIndex == before, "a partial request moved the reader: \(bytes)")
                }
            }
            #expect(decoded == expected)
            #expect(pending.readableBytes == 0)
            #expect(!decoder.expectsTransaction)
        }
    }

    /// Feeds `good` then `bad` to a decoder in a channel; returns what was
    /// decoded and the error raised.
    static func feed(_ good: [UInt8], then bad: [UInt8], limits: RequestDecoder.Limits = limits)
        throws -> (decoded: [ClientRequest], error: (any Error)?) {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(RequestDecoder(limits: limits)))
        var caught: (any Error)?
        do {
            try channel.writeInbound(buffer(good + bad))
        } catch {
            caught = error
        }
        var decoded: [ClientRequest] = []
        while let request = try channel.readInbound(as: ClientRequest.self) { decoded.append(request) }
        _ = try? channel.finish()
        return (decoded, caught)
    }

    static func violation(_ error: (any Error)?) -> String? {
        guard case DurusError.protocolViolation(let reason)? = error as? DurusError else { return nil }
        return reason
    }

    @Test(arguments: [
        ("an unknown command byte", [0x00], "unknown command byte 0"),
        ("E, where no commit log is kept", [0x45], "unknown command byte 69"),
        ("a lower-case l", [0x6C] + u64(1), "unknown command byte 108"),
    ] as [(String, [UInt8], String)])
    func unknownCommands(_ what: String, _ bytes: [UInt8], _ reason: String) throws {
        // Tried: a load and a sync, then the bad byte, in one read.
        // Survives: the two requests before it, decoded in order.
        let good = [0x4C] + Self.u64(5) + [0x53]
        let (decoded, error) = try Self.feed(good, then: bytes)
        #expect(decoded == [.load(OID(5)), .sync], "\(what)")
        #expect(Self.violation(error) == reason, "\(what)")
    }

    @Test func overLimitsBeforeTheirBytesArrive() throws {
        var limits = Self.limits
        limits.maxBulkLoad = 10
        limits.maxTransactionSize = 100
        // A bulk load of 11 OIDs is refused from its count alone: none of
        // its 88 bytes of OIDs has been sent.
        let bulk = try Self.feed([0x4E], then: [0x42] + Self.u32(11), limits: limits)
        #expect(bulk.decoded == [.newOID])
        #expect(Self.violation(bulk.error) == "a bulk load of 11 OIDs is over the limit of 10")
        // A transaction announcing 4 GB less one is refused from its length.
        let huge = try Self.feed([0x43], then: Self.u32(.max), limits: limits)
        #expect(huge.decoded == [.commit])
        #expect(Self.violation(huge.error) == "a transaction of 4294967295 bytes is over the limit of 100")
        // At the limits themselves, both are requests.
        let oids = (1 ... 10).flatMap { Self.u64(UInt64($0)) }
        let atLimit = try Self.feed([0x42] + Self.u32(10) + oids, then: [], limits: limits)
        #expect(atLimit.decoded == [.bulkLoad(Self.buffer(oids))])
        #expect(atLimit.error == nil)
    }

    @Test func recordOverItsLimit() throws {
        var limits = Self.limits
        limits.maxRecordSize = 20
        let big = [record(OID(3), String(repeating: "x", count: 40))]
        let data = WireProtocol.encodeTransaction(big)
        let (decoded, error) = try Self.feed([0x43] + Self.u32(UInt32(data.count)), then: data, limits: limits)
        #expect(decoded == [.commit])
        #expect(Self.violation(error)?.hasPrefix("the record of \(OID(3)) has ") == true)
    }

    @Test(arguments: [
        ("a record length under 8", u32(4) + u64(1)),
        ("a record length running past the end", u32(40) + u64(1) + [0, 0, 0, 0]),
        ("data ending inside a record length", [0, 0]),
        ("the same OID twice", WireProtocol.encodeTransaction([record(OID(2), "a"), record(OID(2), "b")])),
        ("a frame naming another OID than its record", u32(8 + 12) + u64(9) + u64(10) + u32(0)),
    ] as [(String, [UInt8])])
    func malformedTransactions(_ what: String, _ data: [UInt8]) throws {
        // Tried: a commit whose transaction data is malformed. Survives: the
        // `C` before it; the data is refused whole, no record of it decoded.
        let (decoded, error) = try Self.feed([0x43], then: Self.u32(UInt32(data.count)) + data)
        #expect(decoded == [.commit], "\(what)")
        #expect(Self.violation(error) != nil, "\(what): \(String(describing: error))")
    }
}

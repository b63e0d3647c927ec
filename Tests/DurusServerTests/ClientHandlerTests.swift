@testable import Durus
@testable import DurusServer
import Logging
import NIOCore
import NIOEmbedded
import Testing

/// The server's client handler on `EmbeddedChannel`s: requests split
/// anywhere, pipelined, answered a turn's worth at a time, held back while
/// the client reads nothing, and the timeouts, all on a virtual clock.
@Suite struct ClientHandlerTests {
    /// Handlers of one server core on one embedded event loop.
    final class Harness {
        let loop = EmbeddedEventLoop()
        let storage = MemoryStorage()
        let core: ServerCore

        init(_ configure: (inout ServerConfiguration) -> Void = { _ in }) {
            var configuration = ServerConfiguration(address: .tcp(host: "127.0.0.1", port: 0))
            configure(&configuration)
            var logger = Logger(label: "test.handler")
            logger.logLevel = .critical
            core = ServerCore(hub: SessionHub(storage: storage), configuration: configuration, logger: logger)
        }

        func client() throws -> Client {
            let channel = EmbeddedChannel(handler: ClientHandler(server: core, isUnixSocket: false), loop: loop)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            return Client(channel: channel, loop: loop)
        }

        deinit { core.shutdownPools() }
    }

    /// One client's end of an embedded channel.
    struct Client {
        let channel: EmbeddedChannel
        let loop: EmbeddedEventLoop

        func send(_ bytes: [UInt8]) throws {
            try channel.writeInbound(ByteBuffer(bytes: bytes))
        }

        /// Sends `bytes` one read at a time.
        func drip(_ bytes: [UInt8]) throws {
            for byte in bytes { try send([byte]) }
        }

        /// Everything written to the client so far, after the loop ran its tasks.
        func answers(running: Bool = true) throws -> [UInt8] {
            if running { loop.run() }
            var bytes: [UInt8] = []
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
            return bytes
        }

        var isOpen: Bool { channel.isActive }

        /// A new OID, asked for with `N`.
        func newOID() throws -> OID {
            try send([0x4E])
            return try #require(OID(bytes: answers()))
        }

        /// Commits `records` in one exchange (`C`, its transaction) and
        /// returns every byte answered: the invalidations, then the status.
        func commit(_ records: [Record]) throws -> [UInt8] {
            try send([0x43] + ClientHandlerTests.commitRequest(records))
            return try answers()
        }
    }

    static func u32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
    static func u64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
    static func commitRequest(_ records: [Record]) -> [UInt8] {
        let data = WireProtocol.encodeTransaction(records)
        return u32(UInt32(data.count)) + data
    }

    @Test func aWholeSessionDrippedAByteAtATime() throws {
        let harness = Harness()
        let client = try harness.client()
        try client.drip([0x56] + Self.u32(1))
        #expect(try client.answers() == Self.u32(1))
        try client.drip([0x4E])
        let answer = try client.answers()
        #expect(answer.count == 8)
        let oid = OID(bytes: answer)!
        try client.drip([0x4C] + Self.u64(oid.rawValue))
        #expect(try client.answers() == [0x4B], "not stored yet: K")
        try client.drip([0x43])
        #expect(try client.answers() == Self.u32(0), "no invalidations")
        let stored = record(oid, "dripped")
        try client.drip(Self.commitRequest([stored]))
        #expect(try client.answers() == [0x4F])
        try client.drip([0x4C] + Self.u64(oid.rawValue))
        #expect(try client.answers() == [0x4F] + Self.u32(UInt32(stored.bytes.count)) + stored.bytes)
        try client.drip([0x42] + Self.u32(2) + Self.u64(oid.rawValue) + Self.u64(999))
        #expect(try client.answers() == [0x4F] + Self.u32(UInt32(stored.bytes.count)) + stored.bytes + [0x4B])
        #expect(try harness.storage.load(oid) == stored)
        #expect(client.isOpen)
    }

    @Test func pipelinedRequestsAreAnsweredATurnAtATime() throws {
        let harness = Harness()
        let client = try harness.client()
        try client.send(Array(repeating: 0x4E, count: 200))
        // One turn answers requestsPerTurn requests; the rest wait for the
        // loop to come round again, after other clients' turns.
        let first = try client.answers(running: false)
        #expect(first.count == 8 * ClientHandler.requestsPerTurn)
        let rest = try client.answers()
        #expect(rest.count == 8 * (200 - ClientHandler.requestsPerTurn))
        let oids = (first + rest).chunks(of: 8).map { OID(bytes: $0)! }
        #expect(Set(oids).count == 200, "200 distinct OIDs")
    }

    @Test func aClientNotReadingIsNotServedThenDropped() throws {
        let harness = Harness { $0.frameTimeout = .seconds(5) }
        let client = try harness.client()
        client.channel.isWritable = false
        try client.send(Array(repeating: 0x4E, count: 10))
        #expect(try client.answers().isEmpty, "nothing answered while the client reads nothing")
        client.channel.isWritable = true
        client.channel.pipeline.fireChannelWritabilityChanged()
        #expect(try client.answers().count == 80)
        // Unwritable for longer than the frame timeout with requests waiting: dropped.
        client.channel.isWritable = false
        try client.send([0x4E])
        harness.loop.advanceTime(by: .seconds(4))
        #expect(client.isOpen)
        harness.loop.advanceTime(by: .seconds(2))
        #expect(!client.isOpen)
    }

    @Test func silentWithARequestHalfSent() throws {
        // Tried: half a load request, then nothing. Dropped at the frame
        // timeout, not before; the answer to the whole request before it
        // was sent; another client is served throughout.
        let harness = Harness { $0.frameTimeout = .seconds(5) }
        let silent = try harness.client()
        let other = try harness.client()
        try silent.send([0x4E, 0x4C, 0, 0, 0])
        #expect(try silent.answers().count == 8)
        harness.loop.advanceTime(by: .seconds(4))
        #expect(silent.isOpen)
        try other.send([0x4E])
        #expect(try other.answers().count == 8)
        harness.loop.advanceTime(by: .seconds(2))
        #expect(!silent.isOpen)
        try other.send([0x4E])
        #expect(try other.answers().count == 8)
    }

    @Test func silentInTheCommitExchange() throws {
        // Tried: a client that takes the commit exchange and sends no
        // transaction. Another client's commit waits for it, then lands once
        // the silent one is dropped at the commit timeout.
        let harness = Harness { $0.commitTimeout = .seconds(3) }
        let silent = try harness.client()
        let other = try harness.client()
        try silent.send([0x43])
        #expect(try silent.answers() == Self.u32(0))
        let oid = try other.newOID()
        try other.send([0x43])
        #expect(try other.answers().isEmpty, "the exchange is held")
        harness.loop.advanceTime(by: .seconds(2))
        #expect(silent.isOpen)
        #expect(try other.answers().isEmpty)
        harness.loop.advanceTime(by: .seconds(2))
        #expect(!silent.isOpen)
        #expect(try other.answers() == Self.u32(0), "granted once the silent client is gone")
        let stored = record(oid, "after the silent one")
        try other.send(Self.commitRequest([stored]))
        #expect(try other.answers() == [0x4F])
        #expect(try harness.storage.load(oid) == stored)
    }

    @Test func badInputDropsOnlyItsSender() throws {
        // Tried: a good request and an unknown byte in one read. The good
        // request is answered, then the client is dropped; another client's
        // commit lands before and after.
        let harness = Harness()
        let bad = try harness.client()
        let other = try harness.client()
        let oid = try other.newOID()
        #expect(try other.commit([record(oid, "before")]) == Self.u32(0) + [0x4F])
        try? bad.send([0x4E, 0x00])
        #expect(try bad.answers().count == 8)
        #expect(!bad.isOpen)
        let after = record(oid, "after")
        #expect(try other.commit([after]) == Self.u32(0) + [0x4F])
        #expect(try harness.storage.load(oid) == after)
    }

    @Test func aCommitInvalidatesWhatOthersLoaded() throws {
        let harness = Harness()
        let first = try harness.client()
        let second = try harness.client()
        let oid = try first.newOID()
        #expect(try first.commit([record(oid, "one")]) == Self.u32(0) + [0x4F])
        // Committed since the second client last synced: its load is
        // refused as invalid (as Durus 4.3 answers) until it syncs.
        try second.send([0x4C] + Self.u64(oid.rawValue))
        #expect(try second.answers() == [0x49])
        try second.send([0x53])
        #expect(try second.answers() == Self.u32(1) + Self.u64(oid.rawValue))
        try second.send([0x4C] + Self.u64(oid.rawValue))
        #expect(try second.answers().first == 0x4F)
        #expect(try first.commit([record(oid, "two")]) == Self.u32(0) + [0x4F])
        try second.send([0x53])
        #expect(try second.answers() == Self.u32(1) + Self.u64(oid.rawValue))
    }
}

extension Array {
    func chunks(of size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0 ..< Swift.min($0 + size, count)] }
    }
}

import Durus
import DurusBerkeleyDB
import DurusClient
import DurusServer
import DurusTestSupport
import Foundation
import Synchronization
import Testing

/// Bad input from one client: each case drops only the offender (or refuses
/// only its commit); a well-behaved client keeps working at once, without
/// waiting for the offender's timeout, and nothing committed is lost.
@Suite struct ServerBadInputTests {
    /// A server on a Berkeley DB store, a good client with committed data, and checks.
    final class Harness {
        let directory: TemporaryDirectory
        let storage: BerkeleyDBStorage
        let server: DurusServer
        let good: ClientStorage
        private(set) var committed: [Record] = []

        init(_ name: String = #function, _ configure: (inout ServerConfiguration) -> Void = { _ in }) throws {
            directory = TemporaryDirectory(name)
            storage = try openStore(directory.file("store"))
            server = try startServer(storage: storage, configure)
            good = try server.client()
            let root = try good.newOID()
            try commit([record(root, "root")])
        }

        /// Commits `records` and a root that references every object committed so far.
        func commit(_ records: [Record]) throws {
            var all = committed.filter { old in !records.contains { $0.oid == old.oid } && old.oid != .root }
            all += records.filter { $0.oid != .root }
            let root = record(.root, "root", references: all.map(\.oid))
            try good.commit(records.filter { $0.oid != .root } + [root])
            committed = all + [root]
        }

        /// The good client still loads, allocates and commits; every record it committed is there.
        func checkIntact() throws {
            let oid = try good.newOID()
            try commit([record(oid, "after \(oid.rawValue)")])
            _ = try good.sync()
            for record in committed { #expect(try good.load(record.oid) == record) }
            #expect(try storage.verify().isConsistent)
        }

        func raw() throws -> RawClient {
            let client = try RawClient(port: server.port)
            #expect(client.hello() == 1)
            return client
        }

        deinit {
            server.stop()
            try? storage.close()
            directory.remove()
        }
    }

    static func frame(_ body: [UInt8]) -> [UInt8] { bigEndian(UInt32(body.count)) + body }

    @Test func unknownCommandByte() throws {
        let harness = try Harness()
        let bad = try harness.raw()
        bad.send([0x5A])
        #expect(bad.isClosedByServer())
        try harness.checkIntact()
    }

    @Test func truncatedFrameThenDisconnect() throws {
        let harness = try Harness()
        do {
            let bad = try harness.raw()
            bad.send([0x4C, 0, 0, 0])          // L with 3 of its 8 OID bytes
        }
        try harness.checkIntact()
    }

    @Test func wrongProtocolVersion() throws {
        let harness = try Harness()
        let bad = try RawClient(port: harness.server.port)
        #expect(bad.hello(version: 2) == 1)   // the server says what it speaks, then closes
        #expect(bad.isClosedByServer())
        try harness.checkIntact()
    }

    /// Lengths no real client sends: refused before anything is allocated.
    @Test func absurdLengths() throws {
        let harness = try Harness()
        let bulk = try harness.raw()
        bulk.send([0x42, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(bulk.isClosedByServer())
        let commit = try harness.raw()
        #expect(commit.beginCommit() == [])
        commit.send([0xFF, 0xFF, 0xFF, 0xF0])
        #expect(commit.isClosedByServer())
        try harness.checkIntact()                // the exchange was released
    }

    /// Malformed transaction data, each case its own client.
    @Test(arguments: [
        ("a body too short to hold a length", frame([0, 0, 1])),
        ("a record length under 8", frame(bigEndian(4) + [0, 0, 0, 0])),
        ("a record overrunning the body", frame(bigEndian(100) + [UInt8](repeating: 0, count: 18))),
        ("trailing bytes after the records", frame(WireProtocol.encodeTransaction([record(.root, "x")]) + [0, 1])),
        ("a record naming another OID than its frame",
         frame(bigEndian(8 + 16) + OID(0).bytes + record(OID(1), "abcd").bytes)),
        ("a malformed record", frame(bigEndian(8 + 12) + OID(0).bytes + OID(0).bytes + bigEndian(99))),
        ("a record for an OID never handed out", frame(WireProtocol.encodeTransaction([record(OID(1 << 40), "never")]))),
    ])
    func malformedTransaction(_ what: String, _ bytes: [UInt8]) throws {
        let harness = try Harness("malformed \(what)")
        let before = harness.storage.objectCount
        let bad = try harness.raw()
        #expect(bad.beginCommit() == [], "\(what)")
        bad.send(bytes)
        #expect(bad.isClosedByServer(), "\(what)")
        #expect(harness.storage.objectCount == before, "\(what): nothing written")
        try harness.checkIntact()
    }

    @Test func disconnectMidCommit() throws {
        let harness = try Harness()
        do {
            let bad = try harness.raw()
            #expect(bad.beginCommit() == [])
            bad.send([0, 0, 1])                  // part of a length, then gone
        }
        try harness.checkIntact()                // the exchange was released
    }

    /// Silent mid-frame: others are served meanwhile; the offender is dropped at its timeout.
    @Test func silentMidFrame() throws {
        let harness = try Harness { $0.frameTimeout = .seconds(1) }
        let bad = try harness.raw()
        bad.send([0x42, 0, 0, 0, 2] + OID(0).bytes)   // B of 2 OIDs, one sent
        try harness.checkIntact()
        #expect(bad.isClosedByServer())
        try harness.checkIntact()
    }

    /// Silent mid-commit: loads go on; the next commit waits only until the
    /// offender's commit timeout releases the exchange.
    @Test func silentMidCommit() throws {
        let harness = try Harness { $0.commitTimeout = .seconds(1) }
        let bad = try harness.raw()
        #expect(bad.beginCommit() == [])
        for record in harness.committed { #expect(try harness.good.load(record.oid) == record) }
        try harness.checkIntact()                // its commit waits for the timeout, then succeeds
        #expect(bad.isClosedByServer())
    }

    /// Silent in its second exchange, after a first one it ended in time:
    /// the timeout counts from the second exchange's start (the watchdog
    /// armed for the first one must not drop it early), then drops it.
    @Test func silentInALaterExchange() throws {
        let harness = try Harness { $0.commitTimeout = .seconds(1) }
        let bad = try harness.raw()
        #expect(bad.beginCommit() == [])
        bad.send(bigEndian(0))                   // an empty transaction ends the exchange
        usleep(600_000)
        #expect(bad.beginCommit() == [])
        let began = ContinuousClock.now
        #expect(bad.isClosedByServer())
        // Seen after the fact, so never shorter than the server waited.
        #expect(ContinuousClock.now - began >= .milliseconds(900))
        try harness.checkIntact()
    }

    /// A client that pipelines 50,000 loads (1.7 MB of answers) without
    /// reading them: the server stops reading from it when its answers back
    /// up, and serves others meanwhile.
    @Test func pipeliningWithoutReading() throws {
        let harness = try Harness()
        let fixed = try harness.good.newOID()
        try harness.commit([record(fixed, "never changes")])
        let bad = try harness.raw()
        let pusher = Thread {
            var requests: [UInt8] = []
            for _ in 0 ..< 50_000 { requests += [0x4C] + fixed.bytes }
            bad.send(requests)                    // blocks once the server stops reading
        }
        pusher.start()
        usleep(200_000)
        for _ in 0 ..< 20 { try harness.checkIntact() }
        // It is still being served, in order, as it reads.
        let answer = try #require(bad.read(5 + 12 + 13))
        #expect(answer[0] == WireProtocol.Status.okay.rawValue)
        #expect(Array(answer[5...]) == record(fixed, "never changes").bytes)
    }

    /// A commit storing an OID the server reserved for another client drops
    /// that client; the owner then commits it.
    @Test func storingAnOIDReservedForAnother() throws {
        let harness = try Harness()
        let owner = try harness.good.newOID()
        let thief = try harness.raw()
        #expect(thief.beginCommit() == [])
        thief.send(Self.frame(WireProtocol.encodeTransaction([record(owner, "stolen")])))
        #expect(thief.isClosedByServer())
        #expect(throws: DurusError.keyNotFound(owner)) { try harness.good.load(owner) }
        try harness.commit([record(owner, "mine")])
        try harness.checkIntact()
    }
}

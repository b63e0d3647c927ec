import Dispatch
@testable import Durus
import DurusServer
import Foundation
import Synchronization
import Testing

/// One client that floods the server must not stall the others. These
/// tests measure round-trip times, so `scripts/test` runs them alone, after
/// every other test.
@Suite(.serialized) struct FloodTests {
    /// Tried: a client that pipelines `M\xff` (255 new OIDs each) and `B`
    /// (1,000 loads each) requests for 3 s without ever reading its
    /// answers, then disconnects, beside a client that loads, reserves and
    /// commits in a loop. Survives: every round trip of the second client
    /// stays under 100 ms during the flood and for 1 s after it; the server
    /// held at most 1 MiB for any client at once; the flooder's reservations
    /// are gone once it has left; what the second client committed is stored.
    @Test func aFloodingClientDoesNotStallAWellBehavedOne() throws {
        let server = try startServer()
        defer { server.stop() }
        let honest = try server.client()
        let root = try honest.newOID()
        try honest.commit([record(root, "root")])

        let flooder = try RawClient(port: server.port)
        #expect(flooder.hello() == 1)
        var bulk: [UInt8] = [0x42] + bigEndian(1000)
        for _ in 0 ..< 1000 { bulk += withUnsafeBytes(of: root.rawValue.bigEndian) { Array($0) } }
        let pattern = Array(repeating: [UInt8]([0x4D, 0xFF]), count: 200).flatMap { $0 } + bulk
        let floodEnds = ContinuousClock.now + .seconds(3)
        let flooded = Atomic(0)
        let flooding = DispatchGroup()
        DispatchQueue.global().async(group: flooding) {
            flooded.store(flooder.flood(pattern, until: floodEnds), ordering: .relaxed)
        }

        var worst = Duration.zero, roundTrips = 0
        var committed: [OID] = []
        func roundTrip(_ body: () throws -> Void) rethrows {
            let start = ContinuousClock.now
            try body()
            worst = max(worst, ContinuousClock.now - start)
            roundTrips += 1
        }
        while ContinuousClock.now < floodEnds {
            try roundTrip { _ = try honest.load(root) }
            let oid = try honest.newOID()
            try roundTrip { try honest.commit([record(oid, "honest \(roundTrips)")]) }
            committed.append(oid)
        }
        flooding.wait()
        let duringFlood = worst
        flooder.disconnect()
        let afterEnds = ContinuousClock.now + .seconds(1)
        worst = .zero
        while ContinuousClock.now < afterEnds {
            try roundTrip { _ = try honest.load(root) }
            try roundTrip { _ = try honest.sync() }
        }
        let afterFlood = worst

        #expect(flooded.load(ordering: .relaxed) > 100_000, "the flooder sent \(flooded.load(ordering: .relaxed)) bytes")
        #expect(duringFlood < .milliseconds(100), "worst round trip during the flood: \(duringFlood)")
        #expect(afterFlood < .milliseconds(100), "worst round trip after the flood: \(afterFlood)")
        #expect(server.peakClientBufferedBytes < 1 << 20, "held for one client: \(server.peakClientBufferedBytes) bytes")
        #expect(eventually { server.hub.reservedRunCount <= 1 }, "runs: \(server.hub.reservedRunCount), sessions: \(server.hub.sessionCount)")
        for oid in committed.suffix(10) { #expect(try honest.load(oid).oid == oid) }
        print("flood: \(flooded.load(ordering: .relaxed)) bytes sent by the flooder; \(roundTrips) round trips, worst \(duringFlood) during, \(afterFlood) after; peak held \(server.peakClientBufferedBytes) bytes")
    }
}

extension FloodTests {
    /// Tried: a client that pipelines `M\xff` requests for 1 s, never reads
    /// an answer, then sends nothing more and keeps its socket open, with a
    /// frame timeout of 1 s. Survives: the server drops it within a few
    /// seconds (it would otherwise hold its session and reserved OIDs for
    /// ever), its reservations are released, and the other client's
    /// session is untouched.
    @Test func aClientThatNeverReadsItsAnswersIsDropped() throws {
        let server = try startServer { $0.frameTimeout = .seconds(1) }
        defer { server.stop() }
        let honest = try server.client()
        _ = try honest.newOID()
        let flooder = try RawClient(port: server.port)
        #expect(flooder.hello() == 1)
        let sent = flooder.flood(Array(repeating: [UInt8]([0x4D, 0xFF]), count: 500).flatMap { $0 }, until: .now + .seconds(1))
        #expect(sent > 100_000)
        #expect(server.hub.sessionCount == 2)
        #expect(eventually(.seconds(10)) { server.hub.sessionCount == 1 })
        #expect(flooder.isClosedByServer(timeout: .seconds(5)))
        #expect(server.hub.reservedRunCount == 1)
        let oid = try honest.newOID()
        try honest.commit([record(oid, "after the flooder")])
        #expect(Array(try honest.load(oid).data) == Array("after the flooder".utf8))
    }
}

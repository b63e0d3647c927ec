import Durus
import DurusClient
import DurusTestSupport
import Foundation
import Testing

/// Three `durus serve --replication` sites in processes of their own on
/// loopback ports, used by unmodified Python Durus 4.3 clients.
@Suite(.serialized) struct ReplicationServerTests {
    /// A group of three sites; site 0 starts first and creates the group.
    struct Group {
        let directory = TemporaryDirectory("replication-server")
        let ports = [freePort(), freePort(), freePort()]
        let replicationPorts = [freePort(), freePort(), freePort()]
        var servers: [Process?] = [nil, nil, nil]

        func address(_ site: Int) -> String { "127.0.0.1:\(ports[site])" }
        func log(_ site: Int) -> String { directory.file("site\(site).log") }

        mutating func start(_ site: Int) throws {
            try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
            var arguments = ["--db", directory.file("site\(site)"), "--port", "\(ports[site])",
                             "--durability", "write-no-sync", "--log-level", "info",
                             "--replication", "127.0.0.1:\(replicationPorts[site])"]
            for other in 0 ..< 3 where other != site { arguments += ["--peer", "127.0.0.1:\(replicationPorts[other])"] }
            servers[site] = try ServerProcessTests.serve(arguments, log: log(site))
            #expect(ServerProcessTests.connect(ports[site]) != nil, "site \(site) did not come up")
        }

        mutating func startAll() throws {
            for site in 0 ..< 3 { try start(site) }
        }

        mutating func kill(_ site: Int) {
            guard let server = servers[site] else { return }
            Foundation.kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
            servers[site] = nil
        }

        mutating func stop() {
            for site in 0 ..< 3 {
                guard let server = servers[site] else { continue }
                server.terminate()
                server.waitUntilExit()
                servers[site] = nil
            }
            directory.remove()
        }

        /// Every record reachable from the root at `site`, by OID.
        func records(at site: Int) throws -> [OID: Record] {
            let client = try ClientStorage(address: .tcp(host: "127.0.0.1", port: ports[site]))
            defer { try? client.close() }
            while true {
                // Commits arriving meanwhile make loads stale: sync and read again.
                _ = try client.sync()
                var records: [OID: Record] = [:]
                do {
                    try client.forEachRecord { records[$0.oid] = $0 }
                    return records
                } catch is ConflictError {
                    continue
                }
            }
        }
    }

    /// A Python client commits at a replica and reads its write back there at
    /// once; a Python client at the other replica sees the change at its next
    /// sync; loads of every reachable object are byte-identical on all sites.
    @Test func pythonClientsAtReplicasReadTheirWritesAndSeeInvalidations() throws {
        var group = Group()
        defer { group.stop() }
        try group.startAll()
        // A first commit through a replica creates the root.
        #expect(try PythonDurus.run("replication.py", [group.address(1), "write", "greeting", "hello"]).contains("read hello"))

        let stdin = Pipe()
        let (watcher, out, err) = try PythonDurus.start("replication.py", [group.address(2), "watch", "greeting"], stdin: stdin)
        var early = Data()
        while !String(decoding: early, as: UTF8.self).contains("\n") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            early.append(chunk)
        }
        #expect(String(decoding: early, as: UTF8.self).contains("before hello"))

        for round in 0 ..< 5 {
            let written = try PythonDurus.run("replication.py", [group.address(1), "write", "greeting", "hello \(round)"])
            #expect(written.contains("read hello \(round)"), "\(written)")
        }
        stdin.fileHandleForWriting.write(Data("go\n".utf8))
        let watched = String(decoding: early, as: UTF8.self) + (try PythonDurus.finish(watcher, out, err, "replication.py"))
        #expect(watched.contains("after hello 4"), "\(watched)")

        var identical = false
        for _ in 0 ..< 100 where !identical {
            let all = try (0 ..< 3).map { try group.records(at: $0) }
            identical = all[0] == all[1] && all[1] == all[2] && !all[0].isEmpty
            if !identical { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(identical, "the sites hold different records")
    }

    /// Python bank clients transfer at both replicas while the master is
    /// killed with SIGKILL: a new master takes commits within 10 s, no audit
    /// ever sees a wrong total, the total stays constant, and the old master,
    /// restarted, rejoins and converges to the same records.
    @Test func bankInvariantHoldsWhileTheMasterIsKilled() throws {
        var group = Group()
        defer { group.stop() }
        try group.startAll()
        let setup = try PythonDurus.run("bank.py", [group.address(1), "setup", "10", "100"])
        #expect(setup.hasPrefix("oids "))

        let transfers = try [1, 2].map { site in
            try PythonDurus.start("replication.py", [group.address(site), "transfer", "8", "\(site)"])
        }
        Thread.sleep(forTimeInterval: 2.5)
        group.kill(0)
        let killed = ContinuousClock.now

        // A commit made through a replica waits for the election and goes to the new master.
        let client = try ClientStorage(address: .tcp(host: "127.0.0.1", port: group.ports[1]))
        let fresh = try client.newOID()
        try client.commit([record(fresh, "after the failover")])
        let failover = ContinuousClock.now - killed
        print("a commit through a replica landed \(failover) after the master was killed")
        #expect(failover < .seconds(10))
        try client.close()

        for (process, out, err) in transfers {
            let output = try PythonDurus.finish(process, out, err, "replication.py")
            print("bank client: \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
            #expect(output.contains("transfers=") && !output.contains("AUDIT FAILED"), "\(output)")
        }
        for site in [1, 2] {
            #expect(try PythonDurus.run("bank.py", [group.address(site), "audit"]).contains("total=1000"), "site \(site)")
        }

        try group.start(0)
        #expect(try PythonDurus.run("bank.py", [group.address(0), "audit"]).contains("total=1000"))
        // One more commit after the rejoin, then every site holds the same records.
        _ = try PythonDurus.run("replication.py", [group.address(2), "transfer", "0.5", "7"])
        var identical = false
        for _ in 0 ..< 100 where !identical {
            let all = try (0 ..< 3).map { try group.records(at: $0) }
            identical = all[0] == all[1] && all[1] == all[2] && !all[0].isEmpty
            if !identical { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(identical, "the restarted site did not converge")
    }
}

import Durus
import DurusBerkeleyDB
import DurusTestSupport
import Foundation
import Synchronization
import Testing

/// One `durus-replication-child` process: a replicated store driven by
/// commands on its standard input, answering a line each.
final class ReplicationSite: @unchecked Sendable {
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let errors = Pipe()
    private let lines = Mutex<[String]>([])
    private let arrived = DispatchSemaphore(value: 0)
    let name: String

    init(_ name: String, dir: String, local: Int, peers: [Int], environment: [String: String] = [:]) throws {
        self.name = name
        let executable = URL(fileURLWithPath: CrashChild.executable).deletingLastPathComponent()
            .appendingPathComponent("durus-replication-child")
        process.executableURL = executable
        process.arguments = [dir, "127.0.0.1:\(local)"] + peers.map { "127.0.0.1:\($0)" }
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        try process.run()
        let handle = output.fileHandleForReading
        Thread { [self] in
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex ..< newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex ... newline)
                    lines.withLock { $0.append(line) }
                    arrived.signal()
                }
            }
            arrived.signal()
        }.start()
    }

    /// The next line, waiting up to `timeout` seconds; nil at the timeout or the end.
    func next(timeout: Double = 30) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let line = lines.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return line }
            if !process.isRunning && lines.withLock({ $0.isEmpty }) { return nil }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return nil }
            _ = arrived.wait(timeout: .now() + min(left, 0.2))
        }
    }

    /// Sends `command` and returns its answer.
    @discardableResult
    func ask(_ command: String, timeout: Double = 30) -> String {
        send(command)
        return next(timeout: timeout) ?? "(no answer from \(name))"
    }

    func send(_ command: String) {
        try? input.fileHandleForWriting.write(contentsOf: Data((command + "\n").utf8))
    }

    /// Every line received so far and not yet read.
    func drain() -> [String] { lines.withLock { all in defer { all = [] }; return all } }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func quit() {
        if process.isRunning {
            _ = ask("quit", timeout: 20)
            process.waitUntilExit()
        }
    }

    var standardError: String {
        String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self)
    }
}

/// A free TCP port on the loopback interface.
func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Three replication sites in processes of their own on loopback ports.
@Suite(.serialized) struct ReplicationTests {
    struct Group {
        let dir = TemporaryDirectory("replication")
        let ports = [freeLoopbackPort(), freeLoopbackPort(), freeLoopbackPort()]
        var sites: [ReplicationSite] = []
        var environment: [String: String] = [:]

        func path(_ index: Int) -> String { dir.path + "/site\(index)" }

        func start(_ index: Int) throws -> ReplicationSite {
            try ReplicationSite("site\(index)", dir: path(index), local: ports[index],
                                peers: ports.indices.filter { $0 != index }.map { ports[$0] }, environment: environment)
        }

        /// The numbers of the log files in site `index`'s directory.
        func logFiles(_ index: Int) -> [Int] {
            ((try? FileManager.default.contentsOfDirectory(atPath: path(index))) ?? [])
                .filter { $0.hasPrefix("log.") }.compactMap { Int($0.dropFirst(4)) }.sorted()
        }

        mutating func startAll() throws {
            // The first creates the group; the others join through it.
            for index in 0 ..< 3 {
                let site = try start(index)
                let ready = site.next()
                #expect(ready == (index == 0 ? "ready master" : "ready replica"), "site\(index): \(ready ?? "nothing") \(site.standardError)")
                sites.append(site)
            }
        }

        func stop() {
            for site in sites { site.quit() }
            dir.remove()
        }
    }

    @Test func commitsOnTheMasterReachEveryReplica() throws {
        var group = Group()
        defer { group.stop() }
        try group.startAll()
        let (master, replicas) = (group.sites[0], Array(group.sites[1...]))
        var token = ""
        for n in 1 ... 20 {
            let answer = master.ask("write \(n)").split(separator: " ")
            #expect(answer.first == "ack", "\(answer)")
            token = answer.count == 3 ? String(answer[2]) : ""
        }
        for replica in replicas {
            #expect(replica.ask("role").hasPrefix("role replica 127.0.0.1:\(group.ports[0])"))
            #expect(replica.ask("applied \(token) 10000") == "applied")
            #expect(replica.ask("read") == "root 20")
            // 21 commits of the root and a child each, seen in the commit log.
            // The watcher polls: give it a moment to read the last entries.
            var sequence = replica.ask("sequence")
            for _ in 0 ..< 100 where sequence != "sequence 21" {
                Thread.sleep(forTimeInterval: 0.05)
                sequence = replica.ask("sequence")
            }
            #expect(sequence == "sequence 21")
            #expect(replica.ask("sync") == "sync 41")
            #expect(replica.ask("write 99").hasPrefix("error this site is a replica"))
        }
        let digests = group.sites.map { $0.ask("digest") }
        #expect(digests[0].hasPrefix("digest 21 "))
        #expect(Set(digests).count == 1, "\(digests)")
    }

    /// A site's directory, its server stopped, opens read-only (durus stats)
    /// but not for writing outside the group, which would fork its copy.
    @Test func aSiteDirectoryOpensOnlyReplicatedOrReadOnly() throws {
        let group = Group()
        defer { group.stop() }
        let site = try group.start(0)
        #expect(site.next() == "ready master")
        #expect(site.ask("write 7").hasPrefix("ack 7"))
        site.quit()
        #expect {
            try BerkeleyDBStorage(path: group.path(0))
        } throws: { error in
            if case ReplicationError.invalidConfiguration = error { return true }
            return false
        }
        var configuration = BerkeleyDBStorage.Configuration()
        configuration.readOnly = true
        let reader = try BerkeleyDBStorage(path: group.path(0), configuration: configuration)
        defer { try? reader.close() }
        #expect(Array(try reader.load(.root).data) == withUnsafeBytes(of: UInt64(7).bigEndian) { Array($0) })
    }

    /// A peer that accepts connections but is no replication site (Berkeley
    /// DB's join would wait for it for ever): the open gives up at the start
    /// timeout with a typed error naming the peer.
    @Test func aPeerThatIsNotAReplicationSiteFailsTheOpen() throws {
        let dir = TemporaryDirectory("replication-bad-peer")
        defer { dir.remove() }
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        #expect(listen(listener, 16) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        // It accepts (the kernel completes connections in its backlog) and never answers.
        let site = try ReplicationSite("lonely", dir: dir.path + "/site", local: freeLoopbackPort(), peers: [port],
                                       environment: ["DURUS_START_TIMEOUT_MS": "3000"])
        let answer = site.next(timeout: 60) ?? "nothing"
        #expect(answer.contains("peer 127.0.0.1:\(port) accepted a connection but did not answer as a Berkeley DB replication site"),
                "\(answer)")
        site.process.waitUntilExit()
        #expect(site.process.terminationStatus == 1)
    }

    /// Two sites started on one directory: the second is refused, the first goes on.
    @Test func twoSitesOnOneDirectoryAreRefused() throws {
        var group = Group()
        defer { group.stop() }
        let first = try group.start(0)
        #expect(first.next() == "ready master")
        group.sites.append(first)
        let second = try ReplicationSite("second", dir: group.path(0), local: freeLoopbackPort(), peers: [])
        let answer = second.next(timeout: 60) ?? "nothing"
        #expect(answer.contains("is open for writing in another process"), "\(answer)")
        #expect(first.ask("write 1").hasPrefix("ack 1"))
    }

    @Test func aNewMasterIsElectedAfterASigkillAndTheOldOneRejoins() throws {
        var group = Group()
        defer { group.stop() }
        try group.startAll()
        let old = group.sites[0]
        old.send("loop")
        // Let acknowledged commits pile up, then kill the master mid-loop.
        var acknowledged: UInt64 = 0
        while acknowledged < 100, let line = old.next() {
            if line.hasPrefix("ack ") { acknowledged = UInt64(line.dropFirst(4)) ?? acknowledged }
        }
        old.kill()
        for line in old.drain() where line.hasPrefix("ack ") { acknowledged = max(acknowledged, UInt64(line.dropFirst(4)) ?? 0) }
        #expect(acknowledged >= 100)
        let killedAt = Date()

        // One survivor becomes master within 10 s.
        var newMaster: ReplicationSite?
        while newMaster == nil && Date().timeIntervalSince(killedAt) < 10 {
            newMaster = group.sites[1...].first { $0.ask("role").hasPrefix("role master") }
            if newMaster == nil { Thread.sleep(forTimeInterval: 0.05) }
        }
        let elected = Date().timeIntervalSince(killedAt)
        let master = try #require(newMaster, "no master 10 s after the kill")
        print("new master \(master.name) after \(String(format: "%.3f", elected)) s; \(acknowledged) commits acknowledged")

        // Every acknowledged commit is there.
        let root = master.ask("read")
        let held = UInt64(root.split(separator: " ").last ?? "") ?? 0
        #expect(held >= acknowledged, "acknowledged \(acknowledged), the new master holds \(root)")

        // Commits go on; the old master, restarted, rejoins as a replica and converges.
        let restarted = try group.start(0)
        group.sites[0] = restarted
        let ready = restarted.next()
        #expect(ready == "ready replica", "\(ready ?? "nothing") \(restarted.standardError)")
        var token = ""
        for n in held + 1 ... held + 10 {
            let answer = master.ask("write \(n)").split(separator: " ")
            #expect(answer.first == "ack", "\(answer)")
            if answer.count == 3 { token = String(answer[2]) }
        }
        for site in group.sites where site !== master {
            #expect(site.ask("applied \(token) 15000") == "applied", "\(site.name)")
            #expect(site.ask("read") == "root \(held + 10)", "\(site.name)")
        }
        let digests = group.sites.map { $0.ask("digest") }
        #expect(Set(digests).count == 1, "\(digests)")
    }

    /// A replica stopped with SIGSTOP while the master commits catches up
    /// after SIGCONT. A replica killed, and started again once the master
    /// has removed every log file it had at the kill, can no longer be sent
    /// the log it missed: Berkeley DB copies the whole store to it (internal
    /// init), and it converges too. Commits go on throughout, acknowledged
    /// by the master and the replica left running. (A replica that is
    /// stopped but still connected keeps the master from removing the log
    /// it lacks: repmgr archives group-wide.)
    @Test func stoppedAndLaggingReplicasCatchUp() throws {
        var group = Group()
        group.environment = ["DURUS_SMALL_LOGS": "1"]
        defer { group.stop() }
        try group.startAll()
        let master = group.sites[0]
        func burst(_ count: Int) -> String {
            let answer = master.ask("burst \(count)", timeout: 60)
            #expect(answer.hasPrefix("ack "), "\(answer)")
            return String(answer.split(separator: " ").last ?? "")
        }
        func converges(_ site: ReplicationSite, _ why: String) {
            let token = burst(5)
            let applied = site.ask("applied \(token) 60000", timeout: 90)
            #expect(applied == "applied", "\(site.name), \(why): running \(site.process.isRunning) \(site.standardError)")
            for other in group.sites[1...] where other !== site {
                #expect(other.ask("applied \(token) 20000", timeout: 30) == "applied", "\(other.name), \(why)")
            }
            let digests = group.sites.map { $0.ask("digest") }
            #expect(Set(digests).count == 1, "\(why): \(digests)")
            for site in group.sites where !site.process.isRunning {
                Issue.record("\(site.name) ended with status \(site.process.terminationStatus) (\(site.process.terminationReason == .uncaughtSignal ? "signal" : "exit")): \(site.standardError)")
            }
        }
        _ = burst(20)

        // Stopped for a while.
        let stopped = group.sites[1]
        kill(stopped.process.processIdentifier, SIGSTOP)
        _ = burst(300)
        kill(stopped.process.processIdentifier, SIGCONT)
        converges(stopped, "after SIGSTOP and SIGCONT")

        // Down while the master removes the log it would need.
        let logsAtKill = group.logFiles(0)
        group.sites[2].kill()
        let killedAt = Date()
        var commits = 0
        while (group.logFiles(0).first ?? 0) <= (logsAtKill.last ?? 0), Date().timeIntervalSince(killedAt) < 60 {
            _ = burst(100)
            commits += 100
        }
        let logsAtRestart = group.logFiles(0)
        print("master's log files: \(logsAtKill.first ?? 0)...\(logsAtKill.last ?? 0) at the kill, "
              + "\(logsAtRestart.first ?? 0)...\(logsAtRestart.last ?? 0) after \(commits) commits in "
              + String(format: "%.1f s", Date().timeIntervalSince(killedAt)))
        #expect((logsAtRestart.first ?? 0) > (logsAtKill.last ?? 0), "the master kept the log the lagging replica needs")
        let restarted = try group.start(2)
        group.sites[2] = restarted
        let ready = restarted.next(timeout: 60)
        #expect(ready == "ready replica", "\(ready ?? "nothing") \(restarted.standardError)")
        converges(restarted, "after an internal init")
    }
}

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

    convenience init(_ name: String, dir: String, local: Int, peers: [Int], environment: [String: String] = [:]) throws {
        try self.init(name, dir: dir, local: "127.0.0.1:\(local)", peers: peers.map { "127.0.0.1:\($0)" },
                      environment: environment)
    }

    /// A site listening on `local` (HOST:PORT), run inside the network
    /// namespace `namespace` when one is given (`ip netns exec`).
    init(_ name: String, dir: String, local: String, peers: [String], environment: [String: String] = [:],
         namespace: String? = nil) throws {
        self.name = name
        let executable = URL(fileURLWithPath: CrashChild.executable).deletingLastPathComponent()
            .appendingPathComponent("durus-replication-child")
        if let namespace {
            process.executableURL = URL(fileURLWithPath: NetworkNamespaces.ip)
            process.arguments = ["netns", "exec", namespace, executable.path, dir, local] + peers
        } else {
            process.executableURL = executable
            process.arguments = [dir, local] + peers
        }
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
            var answer = master.ask("burst \(count)", timeout: 60)
            // On a loaded machine an acknowledgement can miss its 1 s limit
            // (the commit stands on the master, reported not durable): go on.
            for _ in 0 ..< 5 where answer.contains("not known to be durable") {
                answer = master.ask("burst \(count)", timeout: 60)
            }
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

/// Network namespaces joined by a bridge in the root namespace, one site
/// address each (10.211.N.1, .2, ...): a site's link can be taken down to
/// cut it off. Needs root; `make` returns nil without it.
struct NetworkNamespaces {
    static let ip = FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip"
    let names: [String]
    let bridge: String
    let subnet: Int

    func address(_ index: Int) -> String { "10.211.\(subnet).\(index + 1)" }
    func hostLink(_ index: Int) -> String { "dvh\(subnet)x\(index)" }

    @discardableResult
    static func run(_ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    /// `count` namespaces on a bridge, or nil when they cannot be made (not root).
    static func make(_ count: Int) -> NetworkNamespaces? {
        guard geteuid() == 0 else { return nil }
        let subnet = Int(getpid() % 200) + 20
        let spaces = NetworkNamespaces(names: (0 ..< count).map { "durus\(subnet)n\($0)" }, bridge: "dbr\(subnet)", subnet: subnet)
        spaces.remove()
        guard run(["link", "add", spaces.bridge, "type", "bridge"]), run(["link", "set", spaces.bridge, "up"]) else {
            spaces.remove()
            return nil
        }
        for (index, name) in spaces.names.enumerated() {
            let inside = "dvn\(subnet)x\(index)"
            guard run(["netns", "add", name]),
                  run(["link", "add", spaces.hostLink(index), "type", "veth", "peer", "name", inside]),
                  run(["link", "set", inside, "netns", name]),
                  run(["link", "set", spaces.hostLink(index), "master", spaces.bridge]),
                  run(["link", "set", spaces.hostLink(index), "up"]),
                  run(["netns", "exec", name, ip, "addr", "add", "\(spaces.address(index))/24", "dev", inside]),
                  run(["netns", "exec", name, ip, "link", "set", inside, "up"]),
                  run(["netns", "exec", name, ip, "link", "set", "lo", "up"])
            else {
                spaces.remove()
                return nil
            }
        }
        return spaces
    }

    /// Cuts site `index` off from the others (its link on the bridge goes down), or joins it again.
    func setConnected(_ index: Int, _ connected: Bool) {
        Self.run(["link", "set", hostLink(index), connected ? "up" : "down"])
    }

    func remove() {
        for (index, name) in names.enumerated() {
            Self.run(["link", "del", hostLink(index)])
            Self.run(["netns", "del", name])
        }
        Self.run(["link", "del", bridge])
    }
}

extension ReplicationTests {
    /// Three sites, each in a network namespace of its own. The master is
    /// cut off (its link goes down): a commit there waits for
    /// acknowledgements that cannot come and is reported not durable, while
    /// the other two elect a master within 10 s and acknowledge commits.
    /// When the link comes back the group keeps the majority's commits:
    /// every acknowledged commit is there, the cut-off master's
    /// unacknowledged one is gone, and all three sites hold the same records.
    /// (A site that ends at the heal is started again, as a supervisor would.)
    @Test(.enabled(if: geteuid() == 0, "network namespaces need root"))
    func aPartitionedMasterLosesNothingAcknowledged() throws {
        let spaces = try #require(NetworkNamespaces.make(3), "could not make network namespaces")
        defer { spaces.remove() }
        let dir = TemporaryDirectory("partition")
        defer { dir.remove() }
        let port = freeLoopbackPort()
        let locals = (0 ..< 3).map { "\(spaces.address($0)):\(port)" }
        func start(_ index: Int) throws -> ReplicationSite {
            try ReplicationSite("site\(index)", dir: dir.path + "/site\(index)", local: locals[index],
                                peers: locals.indices.filter { $0 != index }.map { locals[$0] },
                                namespace: spaces.names[index])
        }
        var sites: [ReplicationSite] = []
        defer { for site in sites { site.quit() } }
        for index in 0 ..< 3 {
            var site = try start(index)
            var ready = site.next()
            if index > 0, ready == "error no master is known in the replication group" {
                // Seen once in seven runs here: a joining site that never finished its
                // start-up in 20 s. Started again, as a supervisor would.
                print("site\(index) did not finish joining; started again")
                site.quit()
                site = try start(index)
                ready = site.next()
            }
            #expect(ready == (index == 0 ? "ready master" : "ready replica"), "site\(index): \(ready ?? "nothing")")
            sites.append(site)
        }
        func token(_ answer: String) -> String { String(answer.split(separator: " ").last ?? "") }
        let first = sites[0].ask("burst 20")
        #expect(first.hasPrefix("ack 20 "), "\(first)")
        for site in sites[1...] { #expect(site.ask("applied \(token(first)) 10000") == "applied", "\(site.name)") }

        // Cut off, the master cannot have a commit acknowledged.
        spaces.setConnected(0, false)
        #expect(sites[0].ask("write 9999", timeout: 30) == "notdurable 9999")

        // The other two elect a master, which acknowledges commits.
        func masters(among candidates: [ReplicationSite]) -> [ReplicationSite] {
            candidates.filter { $0.process.isRunning && $0.ask("role", timeout: 10).hasPrefix("role master") }
        }
        let cut = Date()
        var elected: ReplicationSite?
        while elected == nil && Date().timeIntervalSince(cut) < 10 {
            elected = masters(among: Array(sites[1...])).first
            if elected == nil { Thread.sleep(forTimeInterval: 0.05) }
        }
        let majority = try #require(elected, "no master on the majority side 10 s after the cut")
        print("\(majority.name) elected \(String(format: "%.2f", Date().timeIntervalSince(cut))) s after the cut")
        let acknowledged = majority.ask("burst 20", timeout: 30)
        #expect(acknowledged.hasPrefix("ack 40 "), "\(acknowledged)")

        // Healed: the group settles on one master (the two meet, elections
        // follow); it holds the acknowledged commits, not the other one.
        spaces.setConnected(0, true)
        let healed = Date()
        var final: ReplicationSite?
        var last = ""
        while final == nil && Date().timeIntervalSince(healed) < 60 {
            if !sites[0].process.isRunning {
                print("site0 ended at the heal (status \(sites[0].process.terminationStatus)); started again")
                sites[0] = try start(0)
                #expect(sites[0].next(timeout: 60) == "ready replica")
            }
            // While roles change a site may refuse (a replica now, a lockout): ask again.
            let claims = masters(among: sites)
            if claims.count == 1, claims[0].ask("read") == "root 40" {
                last = claims[0].ask("burst 5", timeout: 30)
                if last.hasPrefix("ack ") { final = claims[0] }
            }
            if final == nil { Thread.sleep(forTimeInterval: 0.1) }
        }
        let settled = try #require(final, "no master holding the acknowledged commits 60 s after the heal: \(last)")
        print("\(settled.name) is the master \(String(format: "%.2f", Date().timeIntervalSince(healed))) s after the heal")
        #expect(last.hasPrefix("ack 45 "), "\(last)")
        for site in sites where site !== settled {
            #expect(site.ask("applied \(token(last)) 30000", timeout: 40) == "applied", "\(site.name)")
        }
        for site in sites { #expect(site.ask("read") == "root 45", "\(site.name)") }
        let digests = sites.map { $0.ask("digest") }
        #expect(Set(digests).count == 1, "\(digests)")
    }
}

extension ReplicationTests {
    /// A store made without replication founds a group when its site starts
    /// with no peer answering: two sites join and get its records. Another
    /// store made without replication, started as a site while a peer of
    /// that group answers, is refused with a clear error and keeps its records.
    @Test func aStoreMadeWithoutReplicationFoundsAGroupButJoinsNone() throws {
        var group = Group()
        defer { group.stop() }
        func plainStore(_ path: String, children count: Int) throws {
            let storage = try openStore(path, durability: .writeNoSync)
            let root = try storage.newOID()
            let children = try storage.newOIDs(count: count)
            try storage.commit([Record(oid: root, data: withUnsafeBytes(of: UInt64(7).bigEndian) { Array($0) }, references: children)]
                               + children.map { Record(oid: $0, data: [1, 2, 3], references: []) })
            try storage.close()
        }
        try plainStore(group.path(0), children: 30)
        try group.startAll()
        #expect(group.sites[0].ask("read") == "root 7")
        var digests: [String] = []
        for _ in 0 ..< 100 {
            digests = group.sites.map { $0.ask("digest") }
            if Set(digests).count == 1 { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(Set(digests).count == 1 && digests[0].hasPrefix("digest 31 "), "\(digests)")

        let stranger = group.dir.path + "/stranger"
        try plainStore(stranger, children: 5)
        let site = try ReplicationSite("stranger", dir: stranger, local: freeLoopbackPort(), peers: [group.ports[0]])
        let answer = site.next() ?? "nothing"
        #expect(answer.hasPrefix("error ") && answer.contains("made without replication"), "\(answer)")
        site.process.waitUntilExit()
        let kept = try openStore(stranger)
        defer { try? kept.close() }
        #expect(kept.objectCount == 6)
        #expect(try kept.load(.root).references.count == 5)
    }
}

extension ReplicationTests {
    /// A site of a one-site group, started again with a peer of another
    /// group that answers, is refused with a clear error (a site cannot move
    /// to another group); started as before it serves its store unchanged,
    /// and the other group is untouched.
    @Test func aSiteOfOneGroupCannotJoinAnother() throws {
        var group = Group()
        defer { group.stop() }
        try group.startAll()
        #expect(group.sites[0].ask("burst 10").hasPrefix("ack 10 "))
        let otherDir = group.dir.path + "/other"
        let otherPort = freeLoopbackPort()
        let other = try ReplicationSite("other", dir: otherDir, local: otherPort, peers: [])
        #expect(other.next() == "ready master")
        #expect(other.ask("burst 3").hasPrefix("ack 3 "))
        let before = other.ask("digest")
        other.quit()

        let moved = try ReplicationSite("other", dir: otherDir, local: otherPort, peers: [group.ports[0]])
        let answer = moved.next() ?? "nothing"
        #expect(answer.hasPrefix("error ") && answer.contains("cannot move to another group"), "\(answer)")
        moved.process.waitUntilExit()

        let again = try ReplicationSite("other", dir: otherDir, local: otherPort, peers: [])
        #expect(again.next() == "ready master")
        #expect(again.ask("digest") == before)
        again.quit()
        #expect(group.sites[0].ask("read") == "root 10")
        #expect(Set(group.sites.map { $0.ask("digest") }).count == 1)
    }
}

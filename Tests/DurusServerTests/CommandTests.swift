import Durus
import DurusTestSupport
import Foundation
import Testing

/// The `durus` operator commands on a store a running server holds open.
@Suite(.serialized) struct CommandTests {
    static func durus(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServerProcessTests.executable)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    /// One spelling of a Unix socket across the commands that reach a server:
    /// `serve --unix`, `gc --unix`, `stop --unix`. Tried as well: two
    /// addresses at once, refused before anything is sent (the server goes on).
    @Test func everyCommandReachesAServerByUnixSocket() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let socket = directory.file("durus.sock")
        let server = try ServerProcessTests.serve(["--db", directory.file("data"), "--unix", socket, "--durability", "none"],
                                                  log: directory.file("server.log"))
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        var waited = 0
        while !FileManager.default.fileExists(atPath: socket), waited < 200 { usleep(50_000); waited += 1 }
        #expect(try Self.durus(["gc", "--server", "127.0.0.1:1", "--unix", socket]).status != 0)
        #expect(try Self.durus(["stop", "127.0.0.1:1", "--unix", socket]).status != 0)
        #expect(try Self.durus(["gc", "--unix", socket]).status == 0)
        #expect(try Self.durus(["stop", "--unix", socket]).status == 0)
        server.waitUntilExit()
        #expect(server.terminationStatus == 0)
        #expect(!FileManager.default.fileExists(atPath: socket))
    }

    /// Python writes a graph through `durus serve`; stats, census, verify and
    /// dump read the live store; backup copies it hot; migrate copies it through the server; gc asks
    /// the server to pack, which the server logs and stats then reports; stop ends it.
    @Test func inspectMigrateAndStopALiveServer() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let port = freePort()
        let store = directory.file("data")
        let log = directory.file("server.log")
        let server = try ServerProcessTests.serve(["--db", store, "--port", "\(port)", "--durability", "none", "--log-level", "info"],
                                                  log: log)
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        _ = try #require(ServerProcessTests.connect(port))
        try PythonDurus.run("graph.py", ["127.0.0.1:\(port)", "write"])
        #expect(try Self.json(try Self.durus(["stats", store, "--json"]).output)["lastCycleCollection"] == nil)

        let stats = try Self.durus(["stats", store, "--json"])
        #expect(stats.status == 0)
        let objects = try #require(try Self.json(stats.output)["objects"] as? Int)
        #expect(objects > 200)
        let census = try Self.json(try Self.durus(["census", store, "--json"]).output)
        #expect((census["durus.persistent_dict.PersistentDict"] as? [String: Int])?["objects"] == 201)
        #expect(census.keys.contains("durus.btree.BTree"))
        let verify = try Self.durus(["verify", store, "--json"])
        let verifyClean = try Self.json(verify.output)["clean"] as? Bool
        #expect(verify.status == 0 && verifyClean == true)
        let dump = try Self.durus(["dump", store, "0"])
        #expect(dump.output.contains("durus.persistent_dict.PersistentDict (Python pickle)"))
        #expect(dump.output.contains("\"title\":\"caf\u{e9} \u{2603}\""))
        // The root's Python state as JSON: {'data': {...}} with references by OID and class.
        let rootDump = try Self.json(try Self.durus(["dump", store, "0", "--json"]).output)
        #expect(rootDump["pythonPickle"] as? Bool == true)
        let data = try #require((rootDump["state"] as? [String: Any])?["data"] as? [String: Any])
        #expect(data["title"] as? String == "caf\u{e9} \u{2603}")
        #expect((data["people"] as? [String: Any])?["class"] as? String != nil)
        #expect(try Self.durus(["dump", store, "987654"]).status == 2)

        let backup = directory.file("backup")
        #expect(try Self.durus(["backup", store, backup]).status == 0)   // hot: the server holds the store
        #expect(try Self.durus(["verify", backup]).status == 0)
        let backedUp = try Self.json(try Self.durus(["stats", backup, "--json"]).output)
        #expect(backedUp["objects"] as? Int == objects)

        let copy = directory.file("copy")
        #expect(try Self.durus(["migrate", "--server", "127.0.0.1:\(port)", copy]).status == 0)
        #expect(try Self.durus(["gc", "--server", "127.0.0.1:\(port)"]).status == 0)
        // The server packs in the background (gc returns once it started): wait for its record.
        var afterGC = try Self.json(try Self.durus(["stats", store, "--json"]).output)
        var polls = 0
        while afterGC["lastCycleCollection"] == nil || afterGC["cycleCollection"] != nil, polls < 300 {
            usleep(100_000)
            polls += 1
            afterGC = try Self.json(try Self.durus(["stats", store, "--json"]).output)
        }
        let cycles = try #require(afterGC["lastCycleCollection"] as? [String: Any])
        #expect(cycles["marked"] as? Int == objects)
        #expect((cycles["finished"] as? String)?.hasPrefix("20") == true)
        #expect(afterGC["cycleCollection"] == nil, "no run in progress")
        #expect(try Self.durus(["stats", store]).output.contains("last cycle gc    0 collected, \(objects) marked live"))
        #expect(try Self.durus(["stop", "127.0.0.1:\(port)"]).status == 0)
        server.waitUntilExit()
        #expect(server.terminationStatus == 0)
        let logged = try String(contentsOfFile: log, encoding: .utf8)
        #expect(logged.contains("cycles collected") && logged.contains("marked=\(objects)"), "server log: \(logged.suffix(2000))")

        let copied = try Self.json(try Self.durus(["stats", copy, "--json"]).output)
        #expect(copied["objects"] as? Int == objects)
        #expect(try Self.durus(["verify", copy]).status == 0)
        // The copy serves Python as the original did.
        let again = try ServerProcessTests.serve(["--db", copy, "--port", "\(port)"])
        defer { kill(again.processIdentifier, SIGKILL); again.waitUntilExit() }
        _ = try #require(ServerProcessTests.connect(port))
        #expect(try PythonDurus.run("graph.py", ["127.0.0.1:\(port)", "read"]).contains("verified 10200 objects"))
    }

    /// A Durus 4.3 file of each format (SHELF-1 by `FileStorage`, DFS20 by
    /// `durus.file_storage2`) holding a graph with a 10,000-entry BTree and
    /// a BTree of 20,000 PersistentDicts (lists, nested references), later
    /// transactions and garbage, migrated by `durus migrate` and served by
    /// `durus serve`: a Python client reads every object back as written.
    @Test(arguments: ["shelf", "dfs20"])
    func migrateADurusFileAndServeItToPython(format: String) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.file("data.durus")
        let written = try PythonDurus.run("graph.py", [file, "file", format])
        #expect(written.contains("wrote 34200 objects"), "\(written)")
        let magic = try FileHandle(forReadingFrom: URL(fileURLWithPath: file)).read(upToCount: 5) ?? Data()
        #expect(String(decoding: magic, as: UTF8.self) == (format == "dfs20" ? "DFS20" : "SHELF"), "the file is \(format)")
        let store = directory.file("store")
        let migrated = try Self.durus(["migrate", file, store])
        #expect(migrated.status == 0 && migrated.output.contains("migrated"))
        #expect(try Self.durus(["verify", store]).status == 0)
        let port = freePort()
        let server = try ServerProcessTests.serve(["--db", store, "--port", "\(port)"])
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        _ = try #require(ServerProcessTests.connect(port))
        #expect(try PythonDurus.run("graph.py", ["127.0.0.1:\(port)", "read"]).contains("verified 34200 objects"))
    }
}

import ArgumentParser
import Durus
import DurusBerkeleyDB
import DurusClient
import Foundation

/// A server address on the command line: `host:port`, `[v6]:port` or a Unix
/// socket path; or the path `--unix` gives, which every command that reaches
/// a server takes.
func parseAddress(_ text: String?, unix: String?) throws -> ServerAddress {
    if let unix {
        guard text == nil else { throw ValidationError("give HOST:PORT or --unix PATH, not both") }
        return .unix(path: unix)
    }
    return try parseAddress(text ?? "127.0.0.1:2972")
}

/// A server address on the command line: `host:port`, `[v6]:port` or a Unix socket path.
func parseAddress(_ text: String) throws -> ServerAddress {
    if text.hasPrefix("/") || text.hasPrefix(".") { return .unix(path: text) }
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
        throw ValidationError("an address is host:port or a Unix socket path, not \(text)")
    }
    var host = String(text[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return .tcp(host: host, port: port)
}

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Collect garbage: in a store directory, or by asking a running server (P).",
        discussion: "Examples:\n  durus gc durus-data\n  durus gc --server 127.0.0.1:2972\n  durus gc --unix /run/app/durus.sock",
        aliases: ["pack"]
    )

    @Argument(help: "The store's directory (when no server holds it).") var db: String?
    @Option(help: "Ask the server at this address instead: HOST:PORT.") var server: String?
    @Option(help: "Ask the server on this Unix socket instead.") var unix: String?

    func validate() throws {
        guard [db != nil, server != nil, unix != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give a store directory, --server HOST:PORT or --unix PATH, one of them")
        }
    }

    func run() throws {
        try reporting {
            if server != nil || unix != nil {
                let address = try parseAddress(server, unix: unix)
                try ClientStorage(address: address).pack()
                print("pack started on \(server ?? unix ?? "")")
                return
            }
            var configuration = BerkeleyDBStorage.Configuration()
            configuration.createIfMissing = false
            let storage = try BerkeleyDBStorage(path: db!, configuration: configuration)
            let before = storage.objectCount
            try storage.pack()
            print("collected \(before - storage.objectCount) objects; \(storage.objectCount) remain")
            try storage.close()
        }
    }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop a running server (sends Q), as `durus -s --stop` does.",
        discussion: "Examples:\n  durus stop\n  durus stop 127.0.0.1:3000\n  durus stop --unix /run/app/durus.sock"
    )

    @Argument(help: "The server's address: HOST:PORT (or a Unix socket path, as --unix gives it).") var address: String?
    @Option(help: "The server's Unix socket.") var unix: String?

    func run() throws {
        try reporting {
            let parsed = try parseAddress(address, unix: unix)
            let address = address ?? unix ?? "127.0.0.1:2972"
            try ClientStorage(address: parsed, connectTimeout: .seconds(5)).shutdownServer()
            // Wait until it is gone, so scripts can restart it at once.
            for _ in 0 ..< 200 {
                guard (try? ClientStorage(address: parsed, connectTimeout: .milliseconds(200))) != nil else {
                    print("stopped \(address)")
                    return
                }
                usleep(50_000)
            }
            throw DurusError.network(address: address, message: "still answering after Q (its --allow-quit may refuse it)")
        }
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a store, consistently, while a server keeps serving and committing it.",
        discussion: "DEST must not exist or be empty; the copy opens and verifies as a store of its own.\n\nExample:\n  durus backup durus-data /backups/durus-2026-12-01"
    )

    @Argument(help: "The store's directory.") var db: String
    @Argument(help: "The new backup directory.") var destination: String

    func run() throws {
        try inspecting(db) { storage in
            try storage.backup(to: destination)
            print("backed up \(storage.objectCount) objects to \(destination)")
        }
    }
}

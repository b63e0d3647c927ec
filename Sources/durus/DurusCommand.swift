import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `durus`: the operator's tool for swift-durus stores.
///
/// Exit status: 0 fine, 1 a problem found, 2 a usage or I/O error (with a
/// one-line message on standard error).
@main
struct DurusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "durus",
        abstract: "Serve and look after Durus object stores kept in Berkeley DB.",
        subcommands: [Serve.self, Migrate.self, Stats.self, Census.self, Verify.self, Dump.self, GC.self, Backup.self, Stop.self]
    )

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            // Argument Parser reports usage errors with status 64; ours is 2.
            if exitCode(for: error) == .validationFailure {
                let line = Array((fullMessage(for: error) + "\n").utf8)
                _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}

import ArgumentParser
import Durus
import DurusBerkeleyDB
import DurusClient
import Foundation

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy every live object of a store into a new Berkeley DB store, in flat memory.",
        discussion: """
            SRC is a Durus file (SHELF-1 from Durus 4.x, or DFS20 from Durus 3.x), a \
            Berkeley DB store directory, or a server address (host:port, or a Unix \
            socket path with --server). DST must be new, or left by an interrupted migrate: \
            running it again finishes the job. Shows a progress bar on a terminal, plain \
            lines otherwise.

            Examples:
              durus migrate data.durus new-store
              durus migrate old-store new-store
              durus migrate --server 127.0.0.1:2972 new-store
            """
    )

    @Argument(help: "The source.") var source: String
    @Argument(help: "The new store's directory.") var destination: String
    @Flag(help: "SRC is the address of a running Durus server.") var server = false
    @Option(help: "Records per transaction.") var batch = 5_000
    @Option(help: "What the new store promises per commit afterwards.") var durability: Durability = .full

    func run() throws {
        try reporting {
            let source = try openSource()
            defer { try? source.close() }
            var configuration = BerkeleyDBStorage.Configuration.migration
            configuration.durability = durability
            let store = try BerkeleyDBStorage(path: destination, configuration: configuration)
            defer { try? store.close() }
            let meter = ProgressMeter(total: source.estimatedRecordCount)
            try store.migrate(from: source, batchSize: batch) { meter.show($0) }
            meter.finish()
            print("migrated \(store.objectCount) objects, \(store.byteCount) bytes into \(destination)")
        }
    }

    private func openSource() throws -> any MigrationSource {
        if server { return try ClientStorage(address: try parseAddress(source)) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else {
            throw DurusError.io(path: source, message: "no such file or directory")
        }
        guard isDirectory.boolValue else {
            // A scan reads the file front to back with no index, so memory stays flat however big it is.
            return try FileScan(path: source)
        }
        return try openForReading(source)
    }
}

/// Progress on standard output: a bar redrawn in place on a terminal, a line
/// every few seconds otherwise (logs, CI).
final class ProgressMeter {
    private let total: Int?
    private let terminal = isatty(1) == 1
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private var last: ContinuousClock.Instant
    private var phase: BerkeleyDBStorage.MigrationProgress.Phase?

    init(total: Int?) {
        self.total = total
        start = clock.now
        last = start
    }

    func show(_ progress: BerkeleyDBStorage.MigrationProgress) {
        let now = clock.now
        let changed = progress.phase != phase
        guard changed || now - last >= (terminal ? .milliseconds(100) : .seconds(5)) else { return }
        if changed, phase != nil, terminal { print("") }
        phase = progress.phase
        last = now
        let seconds = max(0.001, Double((now - start).components.seconds) + Double((now - start).components.attoseconds) / 1e18)
        let rate = Double(progress.records) / seconds
        var line = "\(progress.phase.rawValue): \(progress.records) objects, \(String(format: "%.1f", Double(progress.bytes) / 1e6)) MB, \(Int(rate))/s"
        if let total, total > 0, progress.phase == .copying {
            let fraction = min(1, Double(progress.records) / Double(total))
            let filled = Int(fraction * 30)
            let eta = rate > 0 ? Int(Double(total - progress.records) / rate) : 0
            line = "[\(String(repeating: "#", count: filled))\(String(repeating: "-", count: 30 - filled))] \(Int(fraction * 100))% " + line + " ETA \(eta)s"
        }
        if terminal {
            print("\r\(line)\u{1B}[K", terminator: "")
            fflush(nil)   // flushes every stream, stdout included
        } else {
            print(line)
        }
    }

    func finish() {
        if terminal { print("") }
    }
}

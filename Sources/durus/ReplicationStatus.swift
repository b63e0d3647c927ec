import DurusBerkeleyDB
import Foundation

/// The replication status `durus serve --replication` keeps in its store's
/// directory (`replication-status.json`, rewritten every second), so that
/// `durus stats` can report a site's role without joining its group.
enum ReplicationStatus {
    static let fileName = "replication-status.json"

    /// What `site` says about itself now.
    static func current(_ site: BerkeleyDBStorage) -> [String: Any] {
        let lag = site.replicationLag
        let sites = site.replicationSites
        return [
            "role": site.role.rawValue,
            "master": site.master.map { "\($0)" } ?? NSNull(),
            "site": site.replicationAddress.map { "\($0)" } ?? NSNull(),
            "sites": ["known": sites.known + 1, "connected": sites.connected + 1],
            "lag": ["seconds": lag.seconds, "logBytes": lag.bytes],
            "commitLogSequence": site.appliedSequence,
            "updated": ISO8601DateFormatter().string(from: Date()),
        ]
    }

    /// Writes ``current(_:)`` into the store's directory, atomically.
    static func write(_ site: BerkeleyDBStorage) {
        guard let data = try? JSONSerialization.data(withJSONObject: current(site), options: [.sortedKeys]) else { return }
        try? data.write(to: URL(fileURLWithPath: site.path + "/" + fileName), options: .atomic)
    }

    /// Rewrites the status every second on a thread of its own until
    /// `stop()` on the result, which waits for the thread to end.
    static func startWriting(_ site: BerkeleyDBStorage) -> Writer { Writer(site) }

    final class Writer: Sendable {
        private let stopped = DispatchSemaphore(value: 0)
        private let finished = DispatchSemaphore(value: 0)

        init(_ site: BerkeleyDBStorage) {
            let (stopped, finished) = (self.stopped, self.finished)
            let thread = Thread {
                repeat { write(site) } while stopped.wait(timeout: .now() + 1) == .timedOut
                finished.signal()
            }
            thread.name = "durus-replication-status"
            thread.start()
        }

        func stop() {
            stopped.signal()
            finished.wait()
        }
    }

    /// The status a serving site last wrote in `db`, or nil (not replicated,
    /// or never served with replication). `durus stats --json` reports it
    /// under "replication"; its text form prints ``lines(_:)``.
    static func read(_ db: String) -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: db + "/" + fileName) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    /// The status as lines for `durus stats`.
    static func lines(_ status: [String: Any]) -> [String] {
        let lag = status["lag"] as? [String: Any] ?? [:]
        let sites = status["sites"] as? [String: Any] ?? [:]
        return [
            "replication      \(status["role"] ?? "?") at \(status["site"] ?? "?"), master \(status["master"] ?? "?")",
            "sites            \(sites["connected"] ?? "?") of \(sites["known"] ?? "?") connected",
            "lag              \(lag["seconds"] ?? "?") s, \(lag["logBytes"] ?? "?") log bytes (as of \(status["updated"] ?? "?"))",
        ]
    }
}

import CBerkeleyDB
import Durus
import Foundation
import Synchronization

/// Drains the garbage queue in the background when woken (after a commit
/// that queued garbage, and once at open), one batch per hold of the commit
/// lock, pausing between batches as configured.
final class BackgroundCollector: Sendable {
    private let stopped = Mutex(false)
    private let finished = Mutex(false)
    private let signal = DispatchSemaphore(value: 1)
    /// As for the checkpointer: the storage may be released on this thread.
    private let thread = Mutex<pthread_t?>(nil)

    init(storage: BerkeleyDBStorage, pause: Duration) {
        let thread = Thread { [weak storage, self] in
            self.thread.withLock { $0 = pthread_self() }
            // A lower priority (Linux sets it per thread): when loads and the
            // collector want the same core, the scheduler lets the loads in first.
            _ = durus_lower_thread_priority(10)
            while !self.stopped.withLock({ $0 }) {
                guard self.signal.wait(timeout: .now() + .milliseconds(20)) == .success else { continue }
                while !self.stopped.withLock({ $0 }), let storage, storage.collectOneBackgroundBatch() {
                    if pause > .zero { Thread.sleep(forTimeInterval: Double(pause.components.attoseconds) / 1e18 + Double(pause.components.seconds)) }
                }
            }
            self.finished.withLock { $0 = true }
        }
        thread.name = "durus-collector"
        thread.start()
    }

    func wake() { signal.signal() }

    /// Stops the task and waits until it has.
    func stop() {
        stopped.withLock { $0 = true }
        signal.signal()
        if let own = thread.withLock({ $0 }), pthread_equal(own, pthread_self()) != 0 { return }
        while !finished.withLock({ $0 }) { Thread.sleep(forTimeInterval: 0.002) }
    }
}

extension BerkeleyDBStorage {
    /// One background batch; true when more may be queued.
    func collectOneBackgroundBatch() -> Bool {
        if replicationState != nil && role != .master { return false }
        do {
            return try reading { () throws in
                try writer.withLock { counters in
                    guard counters.garbageQueued else { return false }
                    return try !collectBatch(&counters)
                }
            }
        } catch {
            noteCollectionFailure(error)
            return false
        }
    }
}

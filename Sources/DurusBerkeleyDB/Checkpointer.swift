import Foundation
import Synchronization

/// Checkpoints the environment and removes unneeded log files on a timer, so
/// a store under steady commits keeps its logs bounded and recovery short.
final class Checkpointer: Sendable {
    private let stopped = Mutex(false)
    private let finished = Mutex(false)
    /// The task's own thread: the storage's last reference may be dropped
    /// there (during a checkpoint), and `stop()` must not wait for itself.
    private let thread = Mutex<pthread_t?>(nil)
    /// How long one nap lasts: `stop()` returns within about this long.
    private static let slice = 0.02

    init(storage: BerkeleyDBStorage, interval: Duration) {
        let seconds = max(0.001, Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18)
        let thread = Thread { [weak storage, self] in
            self.thread.withLock { $0 = pthread_self() }
            var waited = 0.0
            while !self.stopped.withLock({ $0 }) {
                let nap = min(Self.slice, seconds - waited)
                Thread.sleep(forTimeInterval: nap)
                waited += nap
                guard waited >= seconds else { continue }
                waited = 0
                try? storage?.checkpoint()
            }
            self.finished.withLock { $0 = true }
        }
        thread.name = "durus-checkpointer"
        thread.start()
    }

    /// Stops the task and waits until it has.
    func stop() {
        stopped.withLock { $0 = true }
        if let own = thread.withLock({ $0 }), pthread_equal(own, pthread_self()) != 0 { return }
        while !finished.withLock({ $0 }) { Thread.sleep(forTimeInterval: 0.002) }
    }
}

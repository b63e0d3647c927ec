import Dispatch
import Foundation

/// Starts a thread of its own running `body`; `wait()` on the result joins
/// it. Tests that block (on a semaphore, or spinning) use these rather than
/// Dispatch's pool, which may not start a second block while one waits.
public func startThread(_ body: @escaping @Sendable () -> Void) -> DispatchSemaphore {
    let done = DispatchSemaphore(value: 0)
    Thread {
        body()
        done.signal()
    }.start()
    return done
}

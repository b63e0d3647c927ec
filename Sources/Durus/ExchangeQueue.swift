import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A first-come, first-served exclusive slot that a thread can wait for, or
/// that hands itself to a callback when a holder releases it.
final class ExchangeQueue: Sendable {
    private enum Waiter {
        case thread(DispatchSemaphore)
        case callback(@Sendable () -> Void)
    }

    private struct State {
        var busy = false
        var waiters: [Waiter] = []
        var head = 0
    }

    private let state = Mutex(State())
    /// The thread that holds the slot through ``SessionHub/exclusively(_:)``, if any.
    private let holder = Mutex<pthread_t?>(nil)

    /// Whether the calling thread holds the slot through ``SessionHub/exclusively(_:)``.
    var isHeldByCurrentThread: Bool {
        holder.withLock { holder in holder.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
    }

    func markHeldByCurrentThread(_ held: Bool) {
        holder.withLock { $0 = held ? pthread_self() : nil }
    }

    func acquire() {
        let semaphore: DispatchSemaphore? = state.withLock { state in
            guard state.busy else {
                state.busy = true
                return nil
            }
            let semaphore = DispatchSemaphore(value: 0)
            state.waiters.append(.thread(semaphore))
            return semaphore
        }
        semaphore?.wait()
    }

    func acquire(then body: @escaping @Sendable () -> Void) {
        let now = state.withLock { state in
            guard state.busy else {
                state.busy = true
                return true
            }
            state.waiters.append(.callback(body))
            return false
        }
        if now { body() }
    }

    /// Takes the slot and returns true when it is free; otherwise queues
    /// `body`, to be called with the slot when a holder releases it (on the
    /// releasing thread), and returns false.
    func acquireOrEnqueue(_ body: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { state in
            guard state.busy else {
                state.busy = true
                return true
            }
            state.waiters.append(.callback(body))
            return false
        }
    }

    /// Hands the slot to the longest waiter, or frees it.
    func release() {
        let next: Waiter? = state.withLock { state in
            guard state.head < state.waiters.count else {
                state.busy = false
                state.waiters = []
                state.head = 0
                return nil
            }
            defer { state.head += 1 }
            return state.waiters[state.head]
        }
        switch next {
        case .thread(let semaphore): semaphore.signal()
        case .callback(let body): body()
        case nil: break
        }
    }
}

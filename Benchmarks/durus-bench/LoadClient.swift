import Durus
import Foundation
import Synchronization

/// Runs `body(i)` for every `i` in `0 ..< count`, each on a thread of its own,
/// all at once (one blocking client per thread: a thread pool would cap them
/// at the core count); returns the results in order, or the first error.
func onThreads<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
    let results = Mutex<[Int: Result<T, any Error>]>([:])
    let group = DispatchGroup()
    for index in 0 ..< count {
        group.enter()
        Thread {
            let result = Result { try body(index) }
            results.withLock { $0[index] = result }
            group.leave()
        }.start()
    }
    group.wait()
    return try results.withLock { results in try (0 ..< count).map { try results[$0]!.get() } }
}

/// Calls `body` until `deadline`; returns how many times it ran.
func repeatUntil(_ deadline: ContinuousClock.Instant, _ body: () throws -> Void) rethrows -> Int {
    var count = 0
    while ContinuousClock.now < deadline {
        try body()
        count += 1
    }
    return count
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

// MARK: Loopback TCP

/// A TCP socket on 127.0.0.1 listening on a free port.
func listenOnLoopback() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = loopback(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
            bind(fd, raw, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, raw, &length) == 0
        }
    }
    guard fd >= 0, bound else {
        throw BenchError(description: "cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))")
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// Waits until something listens on `port` of 127.0.0.1, which `process`
/// (a server it started, called `name` in the error) is to open.
func waitForListener(_ process: Process, port: Int, within timeout: Duration, name: String) throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        if let fd = connectToLoopback(port: port) {
            close(fd)
            return
        }
        guard process.isRunning, ContinuousClock.now < deadline else {
            throw BenchError(description: "\(name) did not listen on port \(port)")
        }
        usleep(20_000)
    }
}

/// A free port on 127.0.0.1, for a server in another process to bind.
func freeLoopbackPort() throws -> Int {
    let (fd, port) = try listenOnLoopback()
    close(fd)
    return port
}

/// A connected TCP socket with Nagle off (as both Durus servers and clients
/// set it), or nil when nothing listens on `port`.
func connectToLoopback(port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = loopback(port: port)
    let connected = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
    guard connected else {
        close(fd)
        return nil
    }
    setNoDelay(fd)
    return fd
}

private func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
    return address
}

private func setNoDelay(_ fd: Int32) {
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
}

/// Fills `buffer` from `fd`; false at end of stream or on an error.
private func receiveAll(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Bool {
    var received = 0
    while received < buffer.count {
        let n = recv(fd, buffer.baseAddress! + received, buffer.count - received, 0)
        if n < 0, errno == EINTR { continue }
        guard n > 0 else { return false }
        received += n
    }
    return true
}

private func sendAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Bool {
    var sent = 0
    while sent < buffer.count {
        let n = send(fd, buffer.baseAddress! + sent, buffer.count - sent, Int32(MSG_NOSIGNAL))
        if n < 0, errno == EINTR { continue }
        guard n > 0 else { return false }
        sent += n
    }
    return true
}

// MARK: Echo

/// The physical limit of synchronous clients on this machine: `clients`
/// threads, each sending one byte and reading `replySize` bytes back in a
/// loop until `deadline`, answered by a thread per connection that does
/// nothing else. No server can answer such clients faster over loopback TCP.
/// Returns round trips per second, all clients together.
func echoRate(replySize: Int, clients: Int = 1, until deadline: ContinuousClock.Instant) throws -> Double {
    let (listener, port) = try listenOnLoopback()
    defer { close(listener) }
    for _ in 0 ..< clients {
        Thread {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }
            setNoDelay(fd)
            let request = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
            let reply = UnsafeMutableRawBufferPointer.allocate(byteCount: replySize, alignment: 1)
            reply.initializeMemory(as: UInt8.self, repeating: 0x4F)
            while receiveAll(fd, request), sendAll(fd, UnsafeRawBufferPointer(reply)) {}
            request.deallocate()
            reply.deallocate()
            close(fd)
        }.start()
    }
    return try echoClientsRate(port: port, replySize: replySize, clients: clients, until: deadline)
}

/// `clients` synchronous clients of an echo on `port`, each sending one byte
/// and reading `replySize` bytes back until `deadline`: round trips per second.
func echoClientsRate(port: Int, replySize: Int, clients: Int, until deadline: ContinuousClock.Instant) throws -> Double {
    let start = ContinuousClock.now
    let counts = try onThreads(clients) { _ in
        guard let fd = connectToLoopback(port: port) else { throw BenchError(description: "cannot reach the echo") }
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: replySize, alignment: 1)
        defer { buffer.deallocate() }
        return try repeatUntil(deadline) {
            guard sendAll(fd, UnsafeRawBufferPointer(rebasing: buffer[0 ..< 1])), receiveAll(fd, buffer) else {
                throw BenchError(description: "the echo stopped answering")
            }
        }
    }
    return Double(counts.reduce(0, +)) / (ContinuousClock.now - start).seconds
}

// MARK: Commit echo

/// The limit of Durus's commit exchange on this machine: one synchronous
/// client per transaction in `transactions` (each one commit's transaction
/// data, a record of its own per client), each going through the exchange's
/// two round trips in a loop until `deadline` — `C`; an empty invalidation
/// list back (u32 0); u32 length and the data; the status `O` back — answered
/// by a thread per connection that puts the record in `store` in a
/// transaction of its own and does nothing else (no decoding, invalidations
/// or reference counts). Commits go one at a time, as in a Durus server: a
/// thread holds one lock from the `C` until its status is sent. Returns
/// commits per second, all clients together.
func commitEchoRate(transactions: [[UInt8]], store: RawBerkeleyDB, until deadline: ContinuousClock.Instant) throws
    -> Double {
    let (listener, port) = try listenOnLoopback()
    defer { close(listener) }
    let shared = CommitEchoShared()
    for _ in transactions {
        Thread {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }
            setNoDelay(fd)
            let header = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 4)
            var data = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
            let none: [UInt8] = [0, 0, 0, 0]
            let okay: [UInt8] = [WireProtocol.Status.okay.rawValue]
            while receiveAll(fd, UnsafeMutableRawBufferPointer(rebasing: header[0 ..< 1])) {
                shared.exclusive.lock()
                defer { shared.exclusive.unlock() }
                guard header[0] == WireProtocol.Command.commit.rawValue, none.withUnsafeBytes({ sendAll(fd, $0) }),
                      receiveAll(fd, header) else { break }
                let length = Int(UInt32(bigEndian: header.load(as: UInt32.self)))
                if length > data.count {
                    data.deallocate()
                    data = .allocate(byteCount: length, alignment: 8)
                }
                // One record: u32 (8 + record length) · OID · record, keyed by the OID as RawBerkeleyDB.put keys it.
                guard length > 12, receiveAll(fd, UnsafeMutableRawBufferPointer(rebasing: data[0 ..< length])) else {
                    shared.failure = shared.failure ?? "a transaction of \(length) bytes"
                    break
                }
                do {
                    try store.put(key: data.baseAddress! + 4, value: UnsafeRawBufferPointer(rebasing: data[12 ..< length]))
                } catch {
                    shared.failure = shared.failure ?? "\(error)"
                    break
                }
                guard okay.withUnsafeBytes({ sendAll(fd, $0) }) else { break }
            }
            header.deallocate()
            data.deallocate()
            close(fd)
        }.start()
    }
    let start = ContinuousClock.now
    let counts: [Int]
    do {
        counts = try onThreads(transactions.count) { client in
            guard let fd = connectToLoopback(port: port) else {
                throw BenchError(description: "cannot reach the commit echo")
            }
            defer { close(fd) }
            var frame: [UInt8] = []
            withUnsafeBytes(of: UInt32(transactions[client].count).bigEndian) { frame += $0 }
            frame += transactions[client]
            let command: [UInt8] = [WireProtocol.Command.commit.rawValue]
            let answer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 4)
            defer { answer.deallocate() }
            return try repeatUntil(deadline) {
                guard command.withUnsafeBytes({ sendAll(fd, $0) }), receiveAll(fd, answer),
                      answer.load(as: UInt32.self) == 0, frame.withUnsafeBytes({ sendAll(fd, $0) }),
                      receiveAll(fd, UnsafeMutableRawBufferPointer(rebasing: answer[0 ..< 1])),
                      answer[0] == WireProtocol.Status.okay.rawValue else {
                    throw BenchError(description: "the commit echo stopped answering")
                }
            }
        }
    } catch {
        shared.exclusive.lock()
        defer { shared.exclusive.unlock() }
        throw shared.failure.map { BenchError(description: "the commit echo: \($0)") } ?? error
    }
    return Double(counts.reduce(0, +)) / (ContinuousClock.now - start).seconds
}

/// What the commit echo's threads share: the lock that makes commits one at
/// a time, and the first failure (written and read with the lock held).
private final class CommitEchoShared: @unchecked Sendable {
    let exclusive = NSLock()
    var failure: String?
}

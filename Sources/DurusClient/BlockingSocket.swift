import Durus
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A connected stream socket with blocking, whole-buffer reads and writes
/// and a timeout on each. Used by ``ClientStorage`` (a `Connection` loads
/// synchronously, so the client side needs no event loop).
final class BlockingSocket {
    let address: ServerAddress
    private var fd: Int32
    /// Bytes received but not yet read: one `recv` usually brings a whole answer.
    private var buffer = [UInt8](repeating: 0, count: 64 << 10)
    private var bufferStart = 0
    private var bufferEnd = 0

    init(connectingTo address: ServerAddress, connectTimeout: Duration, ioTimeout: Duration) throws(DurusError) {
        self.address = address
        fd = -1
        switch address {
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_family = AF_UNSPEC
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &list)
            guard status == 0, let first = list else {
                throw .network(address: "\(address)", message: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
            }
            defer { freeaddrinfo(list) }
            var lastError = "no address"
            var entry: UnsafeMutablePointer<addrinfo>? = first
            while let info = entry {
                entry = info.pointee.ai_next
                do {
                    fd = try Self.connect(family: info.pointee.ai_family, address: info.pointee.ai_addr,
                                          length: info.pointee.ai_addrlen, timeout: connectTimeout, label: "\(address)")
                    var one: Int32 = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    break
                } catch {
                    lastError = "\(error)"
                }
            }
            guard fd >= 0 else { throw .network(address: "\(address)", message: lastError) }
        case .unix(let path):
            var unixAddress = sockaddr_un()
            unixAddress.sun_family = sa_family_t(AF_UNIX)
            let capacity = MemoryLayout.size(ofValue: unixAddress.sun_path)
            let bytes = Array(path.utf8)
            guard bytes.count < capacity else {
                throw .network(address: path, message: "a Unix socket path is at most \(capacity - 1) bytes")
            }
            withUnsafeMutableBytes(of: &unixAddress.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            fd = try withUnsafePointer(to: &unixAddress) { pointer throws(DurusError) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw throws(DurusError) in
                    try Self.connect(family: AF_UNIX, address: raw, length: socklen_t(MemoryLayout<sockaddr_un>.size),
                                     timeout: connectTimeout, label: path)
                }
            }
        }
        var timeout = timeval(duration: ioTimeout)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close() }

    /// Connects without blocking longer than `timeout`.
    private static func connect(family: Int32, address: UnsafePointer<sockaddr>, length: socklen_t,
                                timeout: Duration, label: String) throws(DurusError) -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .network(address: label, message: "socket: \(errorText())") }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        if Glibc.connect(fd, address, length) != 0 {
            guard errno == EINPROGRESS else {
                let message = errorText()
                Glibc.close(fd)
                throw .network(address: label, message: "connect: \(message)")
            }
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&poller, 1, Int32(clamping: timeout.milliseconds))
            var code: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &size)
            guard ready == 1, code == 0 else {
                Glibc.close(fd)
                let message = ready == 0 ? "connect timed out after \(timeout)" : "connect: \(String(cString: strerror(code)))"
                throw .network(address: label, message: message)
            }
        }
        _ = fcntl(fd, F_SETFL, flags)
        return fd
    }

    func write(_ bytes: [UInt8]) throws(DurusError) {
        guard fd >= 0 else { throw .closed }
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("write")
            }
            sent += n
        }
    }

    func read(_ count: Int) throws(DurusError) -> [UInt8] {
        guard fd >= 0 else { throw .closed }
        var result: [UInt8] = []
        result.reserveCapacity(count)
        while result.count < count {
            if bufferStart == bufferEnd {
                if count - result.count >= buffer.count {
                    // A large answer: straight into the result, no copy through the buffer.
                    try receive(into: &result, count - result.count)
                    continue
                }
                try fill()
            }
            let take = min(count - result.count, bufferEnd - bufferStart)
            result += buffer[bufferStart ..< bufferStart + take]
            bufferStart += take
        }
        return result
    }

    private func fill() throws(DurusError) {
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in recv(fd, raw.baseAddress!, raw.count, 0) }
            if n < 0, errno == EINTR { continue }
            if n < 0 { throw failure("read") }
            if n == 0 { throw .network(address: "\(address)", message: "the server closed the connection") }
            bufferStart = 0
            bufferEnd = n
            return
        }
    }

    private func receive(into result: inout [UInt8], _ count: Int) throws(DurusError) {
        let start = result.count
        result += repeatElement(0, count: count)
        var received = 0
        while received < count {
            let n = result.withUnsafeMutableBytes { raw in recv(fd, raw.baseAddress! + start + received, count - received, 0) }
            if n < 0, errno == EINTR { continue }
            if n < 0 { throw failure("read") }
            if n == 0 { throw .network(address: "\(address)", message: "the server closed the connection") }
            received += n
        }
    }

    /// One byte, from the buffer when it holds one (the status of every answer).
    func readByte() throws(DurusError) -> UInt8 {
        guard fd >= 0 else { throw .closed }
        if bufferStart == bufferEnd { try fill() }
        defer { bufferStart += 1 }
        return buffer[bufferStart]
    }

    /// A big-endian u32, without allocating when the buffer holds it.
    func readUInt32() throws(DurusError) -> UInt32 {
        guard bufferEnd - bufferStart >= 4 else {
            return try read(4).withUnsafeBytes { BigEndian.uint32($0, at: 0) }
        }
        defer { bufferStart += 4 }
        return buffer.withUnsafeBytes { BigEndian.uint32($0, at: bufferStart) }
    }

    func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
        bufferStart = 0
        bufferEnd = 0
    }

    private func failure(_ operation: String) -> DurusError {
        let timedOut = errno == EAGAIN || errno == EWOULDBLOCK
        return .network(address: "\(address)", message: timedOut ? "\(operation) timed out" : "\(operation): \(Self.errorText())")
    }

    private static func errorText() -> String { String(cString: strerror(errno)) }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

extension timeval {
    init(duration: Duration) {
        let milliseconds = duration.milliseconds
        self.init(tv_sec: Int(milliseconds / 1000), tv_usec: Int(milliseconds % 1000) * 1000)
    }
}

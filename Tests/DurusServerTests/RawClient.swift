import Durus
import Foundation

/// A client that sends whatever bytes a test wants, to see what the server
/// makes of bad input; reads with a deadline so a test never hangs.
final class RawClient: @unchecked Sendable {
    private var fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else { throw DurusError.network(address: "127.0.0.1:\(port)", message: "connect failed") }
    }

    deinit { if fd >= 0 { close(fd) } }

    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            sent += n
        }
    }

    /// Exactly `count` bytes, or nil when the server closes first or `timeout` passes.
    func read(_ count: Int, timeout: Duration = .seconds(10)) -> [UInt8]? {
        var result: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        while result.count < count {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return nil }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000) + 1) == 1 else { continue }
            var buffer = [UInt8](repeating: 0, count: count - result.count)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return nil }
            result += buffer[..<n]
        }
        return result
    }

    /// True when the server has closed the connection (within `timeout`).
    func isClosedByServer(timeout: Duration = .seconds(10)) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) == 1 else { continue }
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, 0)
            if n <= 0 { return true }
        }
        return false
    }

    /// Sends `V` with `version` and returns the server's answer.
    func hello(version: UInt32 = 1) -> UInt32? {
        send([0x56] + bigEndian(version))
        return read(4).map { $0.reduce(0) { $0 << 8 | UInt32($1) } }
    }

    /// Starts a commit: sends `C`, reads the invalidation list.
    func beginCommit() -> [OID]? {
        send([0x43])
        guard let count = read(4).map({ $0.reduce(0) { $0 << 8 | Int($1) } }), let bytes = read(8 * count) else { return nil }
        return (0 ..< count).map { OID(bytes: bytes[(8 * $0) ..< (8 * $0 + 8)])! }
    }

    /// Sends `pattern` over and over without reading anything, until
    /// `deadline`; a send the server does not take within 10 ms is tried
    /// again until then. The number of bytes sent.
    func flood(_ pattern: [UInt8], until deadline: ContinuousClock.Instant) -> Int {
        var sent = 0, offset = 0
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&poller, 1, 10) == 1 else { continue }
            let n = pattern.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if n < 0, errno == EAGAIN || errno == EINTR { continue }
            guard n > 0 else { return sent }
            sent += n
            offset = (offset + n) % pattern.count
        }
        return sent
    }

    /// Ends the connection at once, whatever is left unsent or unread: the
    /// socket is closed with answers unread, so the server gets a reset.
    func disconnect() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
        fd = -1
    }

    func newOIDs(_ count: UInt8) -> [OID]? {
        send([0x4D, count])
        return read(8 * Int(count)).map { bytes in (0 ..< Int(count)).map { OID(bytes: bytes[(8 * $0) ..< (8 * $0 + 8)])! } }
    }
}

func bigEndian(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

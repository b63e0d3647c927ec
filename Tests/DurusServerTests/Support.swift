@testable import Durus
import DurusBerkeleyDB
import DurusClient
import DurusServer
import Foundation
import Logging

/// A server on a free loopback port (or a Unix socket) over `storage`.
func startServer(storage: any Storage = MemoryStorage(), hub: SessionHub? = nil,
                 _ configure: (inout ServerConfiguration) -> Void = { _ in }) throws -> DurusServer {
    var configuration = ServerConfiguration(address: .tcp(host: "127.0.0.1", port: 0))
    configure(&configuration)
    var logger = Logger(label: "test.server")
    logger.logLevel = ProcessInfo.processInfo.environment["DURUS_TEST_LOG"] == nil ? .critical : .debug
    return try DurusServer(hub: hub ?? SessionHub(storage: storage), configuration: configuration, logger: logger)
}

extension DurusServer {
    func stop() {
        shutdown()
        waitUntilStopped()
    }

    var port: Int {
        if case .tcp(_, let port) = address { return port }
        return 0
    }

    /// The address as the Python scripts take it: `host:port` or a socket path.
    var pythonAddress: String {
        switch address {
        case .tcp(let host, let port): "\(host):\(port)"
        case .unix(let path): path
        }
    }

    func client() throws -> ClientStorage { try ClientStorage(address: address, ioTimeout: .seconds(30)) }
}


/// Polls `condition` for up to `timeout`; true as soon as it holds.
func eventually(_ timeout: Duration = .seconds(10), _ condition: () throws -> Bool) rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    repeat {
        if try condition() { return true }
        usleep(10_000)
    } while clock.now < deadline
    return try condition()
}

/// A free TCP port on loopback (bound, read, released).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A record of `size` bytes of data referencing `references`.
func record(_ oid: OID, _ text: String, references: [OID] = []) -> Record {
    Record(oid: oid, data: Array(text.utf8), references: references)
}

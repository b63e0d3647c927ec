import Durus
import DurusClient
import Foundation
import Testing

/// ClientStorage against servers that misbehave: a fake server thread
/// listening on loopback answers as each test says.
@Suite struct ClientStorageFaultTests {
    /// Listens on a free port; `serve` gets each accepted connection's descriptor.
    final class FakeServer: @unchecked Sendable {
        let port: Int
        private let fd: Int32

        init(_ serve: @escaping @Sendable (Int32) -> Void) {
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var one: Int32 = 1
            setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            listen(listener, 8)
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
            port = Int(UInt16(bigEndian: address.sin_port))
            fd = listener
            Thread {
                while true {
                    let client = accept(listener, nil, nil)
                    guard client >= 0 else { return }
                    Thread { serve(client) }.start()
                }
            }.start()
        }

        deinit {
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
        }

        var address: ServerAddress { .tcp(host: "127.0.0.1", port: port) }
    }

    static func read(_ fd: Int32, _ count: Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            if n <= 0 { break }
            got += n
        }
        return Array(buffer[..<got])
    }

    static func write(_ fd: Int32, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// A server that never answers the version check: connecting times out
    /// with a network error instead of hanging.
    @Test func silentServerTimesOut() throws {
        let server = FakeServer { fd in
            _ = Self.read(fd, 1 << 20)
            close(fd)
        }
        #expect {
            try ClientStorage(address: server.address, connectTimeout: .seconds(2), ioTimeout: .milliseconds(300))
        } throws: { error in
            guard case DurusError.network(_, let message) = error else { return false }
            return message.contains("timed out")
        }
    }

    /// Nobody listening: a typed network error.
    @Test func refusedConnection() {
        #expect(throws: DurusError.self) {
            try ClientStorage(address: .tcp(host: "127.0.0.1", port: freePort()), connectTimeout: .seconds(2))
        }
    }

    /// A server speaking another protocol version, or answering a load with
    /// a status byte Durus does not have: typed protocol violations, and the
    /// connection is closed after the second.
    @Test func protocolViolations() throws {
        let otherVersion = FakeServer { fd in
            _ = Self.read(fd, 5)
            Self.write(fd, [0, 0, 0, 2])
        }
        #expect(throws: DurusError.protocolViolation("the server speaks protocol 2, not 1")) {
            try ClientStorage(address: otherVersion.address, ioTimeout: .seconds(5))
        }
        let badStatus = FakeServer { fd in
            _ = Self.read(fd, 5)
            Self.write(fd, [0, 0, 0, 1])
            _ = Self.read(fd, 9)
            Self.write(fd, [0x58])
            _ = Self.read(fd, 1)
        }
        let client = try ClientStorage(address: badStatus.address, ioTimeout: .seconds(5))
        #expect(throws: DurusError.protocolViolation("load of OID(0) answered with status byte 88")) { try client.load(.root) }
        #expect(throws: DurusError.closed) { try client.load(.root) }
    }

    /// A server that closes mid-answer: a network error, never a partial record.
    @Test func serverClosesMidAnswer() throws {
        let server = FakeServer { fd in
            _ = Self.read(fd, 5)
            Self.write(fd, [0, 0, 0, 1])
            _ = Self.read(fd, 9)
            Self.write(fd, [0x4F, 0, 0, 0, 100, 1, 2, 3])
            close(fd)
        }
        let client = try ClientStorage(address: server.address, ioTimeout: .seconds(5))
        #expect(throws: DurusError.self) { try client.load(.root) }
    }

    /// Two servers over one hub stand for two sites of one store. A client
    /// given three addresses skips the first, where nothing listens; when its
    /// server stops it moves to the other for the next request (a load, then
    /// a commit there) and counts the move in `sessionGeneration`. With no
    /// site left it throws a network error once `failoverTimeout` is up, and
    /// a client of addresses where nothing listens is not made at all.
    @Test func aClientOfSeveralAddressesMovesWhenItsServerStops() throws {
        let hub = SessionHub(storage: MemoryStorage())
        let first = try startServer(hub: hub), second = try startServer(hub: hub)
        defer { first.stop(); second.stop() }
        let nobody = ServerAddress.tcp(host: "127.0.0.1", port: freePort())
        let client = try ClientStorage(addresses: [nobody, first.address, second.address], connectTimeout: .seconds(2),
                                       ioTimeout: .seconds(5), failoverTimeout: .seconds(1))
        #expect(client.address == first.address && client.sessionGeneration == 0)
        let root = try client.newOID()
        try client.commit([record(root, "one")])

        first.stop()
        #expect(try client.load(root).data.elementsEqual("one".utf8))
        #expect(client.address == second.address && client.sessionGeneration == 1)
        let child = try client.newOID()
        try client.commit([record(root, "two", references: [child]), record(child, "child")])
        #expect(try hub.storage.load(root).data.elementsEqual("two".utf8))

        second.stop()
        #expect(throws: DurusError.self) { try client.load(root) }
        #expect(client.sessionGeneration == 1)
        #expect(throws: DurusError.self) {
            try ClientStorage(addresses: [nobody, .tcp(host: "127.0.0.1", port: freePort())], connectTimeout: .seconds(1))
        }
    }
}

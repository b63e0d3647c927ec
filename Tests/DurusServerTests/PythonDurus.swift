@testable import Durus
import DurusTestSupport
import Foundation

/// Python Durus 4.3, installed by the test command into a venv in the build
/// folder (DURUS_PYTHON names its interpreter), and the test scripts beside this file.
enum PythonDurus {
    static let scripts = PythonScripts(
        folder: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Python").path)

    static func interpreter() throws -> String { try PythonScripts.interpreter() }

    /// Starts `script` (in the Python folder) with `arguments`.
    static func start(_ script: String, _ arguments: [String], stdin: Pipe? = nil) throws -> (Process, Pipe, Pipe) {
        try scripts.start(script, arguments, stdin: stdin)
    }

    /// Runs `script` to its end; throws with its error output when it fails.
    @discardableResult
    static func run(_ script: String, _ arguments: [String]) throws -> String {
        String(decoding: try scripts.run(script, arguments), as: UTF8.self)
    }

    static func finish(_ process: Process, _ out: Pipe, _ err: Pipe, _ script: String) throws -> String {
        String(decoding: try scripts.finish(process, out, err, script), as: UTF8.self)
    }

    /// Starts Durus 4.3's own server (`durus -s`) on a free port over a new file.
    static func startServer(file: String) throws -> (process: Process, port: Int) {
        let port = freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try interpreter())
        process.arguments = ["-m", "durus", "-s", "--port", "\(port)", "--file", file]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let up = eventually(.seconds(20)) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(port).bigEndian
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
        }
        guard up else {
            process.terminate()
            throw PythonFailure("durus -s did not start on port \(port)")
        }
        return (process, port)
    }
}

/// The record of a Python `accounts.Account` (see Python/accounts.py): the
/// pickled class, then the pickled state `{'balance': n}`, which Python
/// writes zlib-compressed. Just enough pickle to share accounts with Python.
enum AccountPickle {
    static let classPickle: [UInt8] = [0x80, 0x02] + Array("caccounts\nAccount\n".utf8) + [0x71, 0x00, 0x2E]

    /// An uncompressed state pickle, as Durus writes with compression off.
    static func data(balance: Int) -> [UInt8] {
        var state: [UInt8] = [0x80, 0x02, 0x7D, 0x71, 0x01, 0x58, 7, 0, 0, 0] + Array("balance".utf8) + [0x71, 0x02]
        state.append(0x4A)   // BININT: a signed 32-bit little-endian int
        withUnsafeBytes(of: Int32(balance).littleEndian) { state += $0 }
        state += [0x73, 0x2E]   // SETITEM, STOP
        return classPickle + state
    }

    /// The balance in an Account record written by Python or by `data(balance:)`.
    static func balance(_ data: ArraySlice<UInt8>) throws -> Int {
        let bytes = Array(data)
        guard bytes.starts(with: classPickle) else { throw PythonFailure("not an accounts.Account record") }
        var state = Array(bytes[classPickle.count...])
        if state.first == 0x78, let inflated = Zlib.decompress(state[...]) { state = inflated }
        guard let key = state.firstRange(of: Array("balance".utf8)) else {
            throw PythonFailure("no balance in \(state)")
        }
        var index = key.upperBound
        if state[index] == 0x71 { index += 2 }   // BINPUT n
        func little(_ count: Int) -> Int {
            (0 ..< count).reversed().reduce(0) { $0 << 8 | Int(state[index + 1 + $1]) }
        }
        switch state[index] {
        case 0x4B: return Int(state[index + 1])                        // BININT1
        case 0x4D: return little(2)                                    // BININT2
        case 0x4A: return Int(Int32(truncatingIfNeeded: little(4)))    // BININT
        case 0x8A:                                                     // LONG1
            let count = Int(state[index + 1])
            var value = 0
            for offset in (0 ..< count).reversed() { value = value << 8 | Int(state[index + 2 + offset]) }
            if count > 0, count < 8, state[index + 1 + count] & 0x80 != 0 { value -= 1 << (8 * count) }
            return value
        default: throw PythonFailure("unexpected pickle op \(state[index]) for the balance")
        }
    }
}

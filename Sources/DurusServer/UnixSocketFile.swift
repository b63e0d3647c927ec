import Durus
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The file of a listening Unix domain socket: cleared before binding when a
/// dead server left it, and given the owner, group and mode asked for.
enum UnixSocketFile {
    /// Removes a stale socket file at `path`; refuses when a server answers
    /// there or when the path is not a socket (nothing else is ever deleted).
    static func prepare(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw DurusError.network(address: path, message: "exists and is not a socket; not touching it")
        }
        if isListening(path) {
            throw DurusError.network(address: path, message: "another server is listening there")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw DurusError.network(address: path, message: "cannot remove the stale socket: \(String(cString: strerror(errno)))")
        }
    }

    /// Whether a process accepts connections on the socket at `path`. The
    /// connection is not blocking: a listener whose backlog is full answers
    /// `EAGAIN`, which counts as listening; a socket no process listens on
    /// refuses it.
    private static func isListening(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let code = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return code == 0 || errno == EAGAIN || errno == EINPROGRESS
    }

    static func setAccess(_ path: String, owner: String?, group: String?, mode: UInt32?) throws {
        if owner != nil || group != nil {
            var uid = uid_t.max, gid = gid_t.max   // -1: leave unchanged
            if let owner {
                guard let entry = getpwnam(owner) else { throw DurusError.network(address: path, message: "no user \(owner)") }
                uid = entry.pointee.pw_uid
            }
            if let group {
                guard let entry = getgrnam(group) else { throw DurusError.network(address: path, message: "no group \(group)") }
                gid = entry.pointee.gr_gid
            }
            guard chown(path, uid, gid) == 0 else {
                throw DurusError.network(address: path, message: "chown: \(String(cString: strerror(errno)))")
            }
        }
        if let mode, chmod(path, mode_t(mode)) != 0 {
            throw DurusError.network(address: path, message: "chmod: \(String(cString: strerror(errno)))")
        }
    }
}

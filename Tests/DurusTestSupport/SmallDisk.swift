import Foundation

/// A real, small file system for full-disk tests: a tmpfs mounted on a fresh
/// directory, which ``fill()`` fills to its last byte with a ballast file and
/// ``freeSpace()`` empties again. Writes to it fail with the kernel's own
/// ENOSPC, not a simulated one. Mounting needs root with CAP_SYS_ADMIN (the
/// test command runs as root); ``isAvailable`` says whether this machine can.
public struct SmallDisk: Sendable {
    /// Where it is mounted.
    public let path: String

    /// Mounts a tmpfs of `megabytes` on a new directory under the temporary folder.
    public init(megabytes: Int, _ name: String = #function) throws {
        path = NSTemporaryDirectory() + "durus-disk-\(name.filter { $0.isLetter || $0.isNumber })-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard mount("tmpfs", path, "tmpfs", 0, "size=\(megabytes)m,mode=0700") == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: path)
            throw SmallDiskError(description: "cannot mount a \(megabytes) MB tmpfs on \(path): \(reason) (needs root with CAP_SYS_ADMIN)")
        }
    }

    /// True when a tmpfs can be mounted here (tried once per process). It
    /// first unmounts disks of earlier runs that died before removing theirs
    /// (a crash is what these tests look for): any untouched for an hour.
    public static let isAvailable: Bool = {
        removeAbandoned()
        guard let disk = try? SmallDisk(megabytes: 1, "probe") else { return false }
        disk.remove()
        return true
    }()

    private static func removeAbandoned() {
        guard let mounts = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return }
        let prefix = NSTemporaryDirectory() + "durus-disk-"
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 2, fields[2] == "tmpfs", fields[1].hasPrefix(prefix) else { continue }
            let path = String(fields[1])
            guard let changed = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                  changed < Date().addingTimeInterval(-3600) else { continue }
            SmallDisk(abandoned: path).remove()
        }
    }

    private init(abandoned path: String) { self.path = path }

    private var ballast: String { path + "/ballast" }

    /// Appends to a ballast file until the file system refuses with ENOSPC,
    /// the last bytes one at a time, then gives `leaving` bytes of it back;
    /// returns the ballast's size.
    @discardableResult
    public func fill(leaving: Int = 0) throws -> Int {
        let fd = open(ballast, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        guard fd >= 0 else { throw SmallDiskError(description: "cannot create \(ballast): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let block = [UInt8](repeating: 0, count: 64 << 10)
        var total = 0
        for size in [block.count, 4096, 1] {
            while true {
                let written = block.withUnsafeBytes { write(fd, $0.baseAddress!, size) }
                if written > 0 {
                    total += written
                    continue
                }
                guard errno == ENOSPC else {
                    throw SmallDiskError(description: "writing \(ballast) failed: \(String(cString: strerror(errno)))")
                }
                break
            }
        }
        guard leaving > 0 else { return total }
        guard ftruncate(fd, off_t(max(0, total - leaving))) == 0 else {
            throw SmallDiskError(description: "cannot shorten \(ballast): \(String(cString: strerror(errno)))")
        }
        return max(0, total - leaving)
    }

    /// Deletes the ballast: the space it held is free again.
    public func freeSpace() { unlink(ballast) }

    /// Unmounts (lazily, so a file still open cannot keep it) and removes the directory.
    public func remove() {
        umount2(path, Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Why a ``SmallDisk`` could not be set up.
public struct SmallDiskError: Error, CustomStringConvertible {
    public var description: String
}

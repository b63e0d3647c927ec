/// Where a Durus server listens.
public enum ServerAddress: Sendable, Hashable, CustomStringConvertible {
    /// A TCP host (name or numeric, IPv4 or IPv6) and port.
    case tcp(host: String, port: Int)
    /// A Unix domain socket at a path.
    case unix(path: String)

    /// Durus's default: 127.0.0.1:2972.
    public static let standard = ServerAddress.tcp(host: "127.0.0.1", port: 2972)

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): path
        }
    }
}

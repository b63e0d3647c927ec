import NIOCore
import NIOPosix

/// The limit of a SwiftNIO server on this machine: `eventLoops` event loops
/// (DurusServer's default, 2) answering each byte received with `replySize`
/// bytes and doing nothing else, for `clients` synchronous clients as
/// ``echoRate(replySize:clients:until:)`` has them. DurusServer's own I/O
/// path, without the protocol or the storage. Round trips per second.
func nioEchoRate(replySize: Int, clients: Int, eventLoops: Int = 2, until deadline: ContinuousClock.Instant) throws
    -> Double {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: eventLoops)
    defer { try? group.syncShutdownGracefully() }
    let reply = ByteBuffer(repeating: 0x4F, count: replySize)
    let server = try ServerBootstrap(group: group)
        .serverChannelOption(ChannelOptions.backlog, value: 64)
        .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(EchoHandler(reply: reply))
            }
        }
        .bind(host: "127.0.0.1", port: 0).wait()
    defer { try? server.close().wait() }
    guard let port = server.localAddress?.port else { throw BenchError(description: "the NIO echo has no port") }
    return try echoClientsRate(port: port, replySize: replySize, clients: clients, until: deadline)
}

/// Writes `reply` once for every byte received.
private final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let reply: ByteBuffer

    init(reply: ByteBuffer) { self.reply = reply }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        for _ in 0 ..< unwrapInboundIn(data).readableBytes { context.write(wrapOutboundOut(reply), promise: nil) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

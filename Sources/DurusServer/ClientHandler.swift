import Durus
import Logging
import NIOCore

/// Speaks protocol v1 with one client: takes its requests from the bytes
/// received (through a ``RequestDecoder``), answers them through its
/// session, and drops it (and only it) when it breaks the protocol or stalls.
///
/// Requests are answered on the channel's event loop; a commit waits for
/// the hub's exchange without blocking the loop, ends it once its records
/// are received (the next client's exchange begins while they are applied),
/// is applied on the loop in its turn, and waits for the disk (when its
/// storage hands back such a wait) on the server's commit threads. The
/// handler reads only when it can use the bytes: not while a commit is
/// being applied (while it waits for the exchange, one read, for the
/// transaction), not while whole requests are still buffered, and not while
/// the client is not reading its answers (the channel is not writable).
/// Answers are written as they are made, so a
/// client that pipelines requests without reading stops being served once
/// its unread answers pass the channel's high-water mark; and one turn
/// answers at most ``requestsPerTurn`` requests (or as many parts of a bulk
/// load) before the event loop moves on to other clients.
final class ClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        case command
        case waitingForExchange
        case receivingTransaction(CommitExchange)
        /// Answering a bulk load; the OIDs still to answer.
        case bulkLoading(ByteBuffer)
        case committing
        case closed
    }

    private let server: ServerCore
    private let isUnixSocket: Bool
    private var logger: Logger
    private var session: SessionStorage?
    private var decoder: RequestDecoder
    private var input = ByteBuffer()
    private var output = ByteBuffer()
    private var phase = Phase.command
    private var frameTimer: Scheduled<Void>?
    /// When the transaction of the exchange held now is due; nil outside one.
    private var exchangeDeadline: NIODeadline?
    /// Drops the client once `exchangeDeadline` passes. Armed once and
    /// re-armed only when it fires during a later exchange, so a commit
    /// schedules no task of its own.
    private var exchangeWatchdog: Scheduled<Void>?
    private var stallTimer: Scheduled<Void>?
    private var closeAfterCommit = false
    private var processing = false
    private var processAgain = false
    private var continuationScheduled = false

    /// Requests (or bulk-load parts of ``bulkLoadPart`` OIDs) answered in one
    /// turn of the event loop before other clients get theirs.
    static let requestsPerTurn = 64
    static let bulkLoadPart = 32
    /// Answers are written to the channel once this many bytes are made, so
    /// its writability follows what the client leaves unread.
    static let writeThreshold = 32 << 10

    init(server: ServerCore, isUnixSocket: Bool) {
        self.server = server
        self.isUnixSocket = isUnixSocket
        decoder = RequestDecoder(limits: .init(server.configuration))
        logger = server.logger
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        logger[metadataKey: "client"] = "\(context.channel.remoteAddress.map { "\($0)" } ?? "unix")"
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        session = server.hub.openSession(invalidationLimit: server.configuration.invalidationLimit) { reason in
            loop.execute {
                let (handler, context) = bound.value
                handler.drop(context, reason)
            }
        }
        server.register(context.channel, drain: { [bound] in
            loop.execute {
                let (handler, context) = bound.value
                handler.drainAndClose(context)
            }
        })
    }

    /// A channel closed before it became active (one accepted as the server
    /// shuts down) never reports inactive: it leaves the server's clients here.
    func handlerRemoved(context: ChannelHandlerContext) {
        try? session?.close()
        session = nil
        server.unregister(context.channel)
    }

    func channelActive(context: ChannelHandlerContext) {
        logger.info("client connected")
        context.read()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .receivingTransaction(let exchange) = phase { exchange.abandon() }
        phase = .closed
        cancelTimers()
        try? session?.close()
        session = nil
        server.unregister(context.channel)
        logger.info("client disconnected")
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if input.readableBytes == 0 {
            input = incoming
        } else {
            input.writeBuffer(&incoming)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        process(context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stallTimer?.cancel()
            stallTimer = nil
            process(context)
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        drop(context, "socket error: \(error)", level: .info)
    }

    // MARK: Requests

    private enum Step {
        case handled
        case needMoreBytes
        case wait
    }

    /// Answers the whole requests buffered, a turn's worth at most, then
    /// decides what comes next: read more, wait for the client to read its
    /// answers, or take another turn after other clients had theirs.
    private func process(_ context: ChannelHandlerContext) {
        // A write can make the channel writable again at once, which calls
        // this from inside itself: that call only asks for one more pass.
        guard !processing else {
            processAgain = true
            return
        }
        processing = true
        defer { processing = false }
        repeat {
            processAgain = false
            processTurn(context)
        } while processAgain && context.channel.isActive
    }

    private func processTurn(_ context: ChannelHandlerContext) {
        var step = Step.handled
        var budget = Self.requestsPerTurn
        while step == .handled {
            if output.readableBytes >= Self.writeThreshold { flush(context) }
            guard context.channel.isWritable, budget > 0 else { break }
            budget -= 1
            do {
                switch phase {
                case .command, .receivingTransaction:
                    guard let session else { step = .wait; break }
                    guard let request = try decoder.decode(buffer: &input) else { step = .needMoreBytes; break }
                    step = try handle(request, context, session)
                case .bulkLoading(let oids): step = try answerBulkLoad(oids)
                case .waitingForExchange, .committing, .closed: step = .wait
                }
            } catch {
                drop(context, "\(error)")
                return
            }
        }
        flush(context)
        // What is held matters when it is much: when the turn stopped with
        // requests left, or a request is arriving in many reads.
        if step == .handled || input.readableBytes > Self.writeThreshold {
            server.noteBuffered(input.readableBytes + pendingOutboundBytes(context))
        }
        if case .command = phase, input.readableBytes > 0, step == .needMoreBytes {
            armFrameTimer(context)
        } else {
            frameTimer?.cancel()
            frameTimer = nil
        }
        switch step {
        case .needMoreBytes:
            if context.channel.isWritable { context.read() }
        case .handled:
            // Stopped for the turn's budget: go on once others had a turn.
            // Stopped because the client leaves its answers unread: the
            // channel's writability change resumes it, unless it stays so.
            if context.channel.isWritable { scheduleTurn(context) } else { armStallTimer(context) }
        case .wait:
            break
        }
    }

    private func scheduleTurn(_ context: ChannelHandlerContext) {
        guard !continuationScheduled else { return }
        continuationScheduled = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = bound.value
            handler.continuationScheduled = false
            handler.process(context)
        }
    }

    /// Bytes written to the channel that the client has not taken yet.
    private func pendingOutboundBytes(_ context: ChannelHandlerContext) -> Int {
        output.readableBytes + ((try? context.channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0)
    }

    private func handle(_ request: ClientRequest, _ context: ChannelHandlerContext, _ session: SessionStorage) throws -> Step {
        switch request {
        case .version(let theirs):
            output.writeInteger(WireProtocol.version)
            guard theirs == WireProtocol.version else {
                throw DurusError.protocolViolation("the client speaks protocol \(theirs), not \(WireProtocol.version)")
            }
        case .newOID:
            output.writeInteger(try session.newOID().rawValue)
        case .newOIDs(let count):
            for oid in try session.newOIDs(count: count) { output.writeInteger(oid.rawValue) }
        case .load(let oid):
            try writeAnswer(session.answer(oid))
        case .bulkLoad(let oids):
            phase = .bulkLoading(oids)
        case .commit:
            beginCommit(context, session)
            // The transaction follows the invalidations: keep asking for it,
            // so the socket stays registered for reading (dropping and
            // renewing that costs two system calls a commit). One read at
            // most arrives before the exchange is granted.
            if input.readableBytes == 0, context.channel.isWritable { context.read() }
            return .wait
        case .transaction(let records, let bytes):
            // The decoder reads a transaction only after a `C`, and this
            // handler decodes it only once the exchange is granted.
            guard case .receivingTransaction(let exchange) = phase else {
                throw DurusError.protocolViolation("a transaction outside a commit exchange")
            }
            return commit(context, exchange, records, bytes: bytes)
        case .sync:
            writeOIDs(try session.sync())
        case .pack:
            server.startPack(reason: "requested by a client")
            output.writeInteger(WireProtocol.Status.okay.rawValue)
        case .quit:
            switch server.configuration.quitPolicy {
            case .anyone: break
            case .unixSocketOnly where isUnixSocket: break
            case .unixSocketOnly, .nobody:
                throw DurusError.protocolViolation("shutdown (Q) is not allowed for this client")
            }
            logger.notice("shutdown requested by a client")
            phase = .closed
            server.requestShutdown()
            return .wait
        case .close:
            phase = .closed
            context.close(promise: nil)
            return .wait
        case .commitLogEnd:
            guard let end = server.configuration.commitLogEnd else {
                throw DurusError.protocolViolation("unknown command byte \(WireProtocol.commitLogEndCommand)")
            }
            output.writeInteger(try end())
        }
        return .handled
    }

    /// Answers the next part of a bulk load.
    private func answerBulkLoad(_ oids: ByteBuffer) throws -> Step {
        guard let session else { return .wait }
        var oids = oids
        for _ in 0 ..< min(oids.readableBytes / 8, Self.bulkLoadPart) {
            try writeAnswer(session.answer(OID(oids.readInteger(as: UInt64.self)!)))
        }
        phase = oids.readableBytes == 0 ? .command : .bulkLoading(oids)
        return .handled
    }

    private func writeAnswer(_ answer: LoadAnswer) {
        switch answer {
        case .record(let record):
            output.writeInteger(WireProtocol.Status.okay.rawValue)
            output.writeInteger(UInt32(record.bytes.count))
            output.writeBytes(record.bytes)
        case .notFound:
            output.writeInteger(WireProtocol.Status.keyError.rawValue)
        case .invalid:
            output.writeInteger(WireProtocol.Status.invalid.rawValue)
        }
    }

    private func writeOIDs(_ oids: [OID]) {
        output.writeInteger(UInt32(oids.count))
        for oid in oids { output.writeInteger(oid.rawValue) }
    }

    // MARK: Commit exchange

    private func beginCommit(_ context: ChannelHandlerContext, _ session: SessionStorage) {
        phase = .waitingForExchange
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        // A free exchange is granted at once, on this thread, before
        // `beginExchange` returns: then it is taken here, without a task.
        let grantedAtOnce = GrantedAtOnce()
        session.beginExchange { result in
            if loop.inEventLoop, grantedAtOnce.take(result) { return }
            loop.execute {
                let (handler, context) = bound.value
                handler.exchangeGranted(context, result)
            }
        }
        if let result = grantedAtOnce.close() { exchangeGranted(context, result) }
    }

    private func exchangeGranted(_ context: ChannelHandlerContext, _ result: Result<CommitExchange, any Error>) {
        guard case .waitingForExchange = phase else {
            if case .success(let exchange) = result { exchange.abandon() }
            return
        }
        switch result {
        case .failure(let error):
            drop(context, "\(error)")
        case .success(let exchange):
            writeOIDs(exchange.invalidations)
            phase = .receivingTransaction(exchange)
            let deadline = context.eventLoop.now + .nanoseconds(server.configuration.commitTimeout.nanoseconds)
            exchangeDeadline = deadline
            if exchangeWatchdog == nil { armExchangeWatchdog(context, at: deadline) }
            process(context)
        }
    }

    /// Commits `records`, the transaction of the exchange held (none: the
    /// client gives its commit up).
    private func commit(_ context: ChannelHandlerContext, _ exchange: CommitExchange, _ records: [Record], bytes: Int) -> Step {
        exchangeDeadline = nil
        guard !records.isEmpty else {
            exchange.abandon()
            phase = .command
            return .handled
        }
        phase = .committing
        // The exchange ends here and the next client's begins; the records
        // are applied on this loop in their turn, as a task of their own: a
        // next client on this loop hears its invalidations first.
        let objects = records.count
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        exchange.commitAfterExchange(records) { apply in
            loop.execute {
                let outcome = apply()
                let (handler, context) = bound.value
                if handler.applied(context, outcome, objects: objects, bytes: bytes) { handler.process(context) }
            }
        }
        return .wait
    }

    /// A commit applied (or refused): answered at once, or, for a storage
    /// that must wait for the disk, after that wait, made on a pool thread
    /// so that flushes that overlap share one fsync. True when the client
    /// may send its next request.
    private func applied(_ context: ChannelHandlerContext, _ outcome: Result<PendingFlush?, any Error>,
                         objects: Int, bytes: Int) -> Bool {
        switch outcome {
        case .failure(let error):
            return finishCommit(context, .failure(error), objects: objects, bytes: bytes)
        case .success(nil):
            return finishCommit(context, .success(()), objects: objects, bytes: bytes)
        case .success(let flush?):
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            server.commitPool.runIfActive(eventLoop: context.eventLoop, flush).whenComplete { result in
                let (handler, context) = bound.value
                if handler.finishCommit(context, result, objects: objects, bytes: bytes) { handler.process(context) }
            }
            return false
        }
    }

    /// Answers a commit; true when the client may send its next request.
    private func finishCommit(_ context: ChannelHandlerContext, _ result: Result<Void, any Error>, objects: Int, bytes: Int) -> Bool {
        guard case .committing = phase else { return false }
        switch result {
        case .success:
            logger.info("commit", metadata: ["objects": "\(objects)", "bytes": "\(bytes)"])
            output.writeInteger(WireProtocol.Status.okay.rawValue)
            server.noteCommitted(bytes: bytes)
        case .failure(let conflict as ConflictError):
            logger.info("conflict", metadata: ["objects": "\(objects)", "oids": "\(conflict.oids.prefix(5).map(\.rawValue))"])
            output.writeInteger(WireProtocol.Status.invalid.rawValue)
        case .failure(DurusError.commitNotDurable(let reason)):
            // Applied and visible, but not known to be durable (a log flush
            // failed, or the replicas did not acknowledge it): the client must
            // not be told it committed, and there is no status for that.
            drop(context, "commit applied but not known to be durable: \(reason)", level: .error)
            return false
        case .failure(let error):
            drop(context, "commit refused: \(error)")
            return false
        }
        phase = .command
        if closeAfterCommit {
            flush(context)
            phase = .closed
            context.close(promise: nil)
            return false
        }
        return true
    }

    // MARK: Ending

    /// Called at shutdown: a commit being applied is answered first.
    private func drainAndClose(_ context: ChannelHandlerContext) {
        if case .committing = phase {
            closeAfterCommit = true
        } else {
            drop(context, "the server is shutting down", level: .info)
        }
    }

    private func drop(_ context: ChannelHandlerContext, _ reason: String, level: Logger.Level = .warning) {
        if case .closed = phase, !context.channel.isActive { return }
        if case .receivingTransaction(let exchange) = phase { exchange.abandon() }
        phase = .closed
        cancelTimers()
        logger.log(level: level, "dropping client", metadata: ["reason": "\(reason)"])
        flush(context)
        context.close(promise: nil)
    }

    private func flush(_ context: ChannelHandlerContext) {
        guard output.readableBytes > 0, context.channel.isActive else { return }
        // Swapped out before writing: the write can turn the channel writable
        // again at once, which calls `process` (and so this) from inside it.
        var pending = output
        output = Self.noOutput
        context.writeAndFlush(wrapOutboundOut(pending), promise: nil)
        // Written through, the buffer is ours alone again: the next answers
        // reuse its memory (were the channel still holding it, clearing
        // would copy it, so a big one is let go).
        if output.readableBytes == 0, pending.capacity <= Self.writeThreshold {
            pending.clear()
            output = pending
        }
    }

    /// Stands in for `output` while it is being written.
    private static let noOutput = ByteBuffer()

    private func armFrameTimer(_ context: ChannelHandlerContext) {
        frameTimer?.cancel()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let timeout = server.configuration.frameTimeout
        frameTimer = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.nanoseconds))) {
            let (handler, context) = bound.value
            handler.drop(context, "silent for \(timeout) with a request half sent")
        }
    }

    private func armExchangeWatchdog(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        exchangeWatchdog = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = bound.value
            handler.exchangeWatchdog = nil
            guard let due = handler.exchangeDeadline else { return }
            if due <= context.eventLoop.now {
                handler.drop(context, "sent no transaction within \(handler.server.configuration.commitTimeout) of the commit exchange")
            } else {
                handler.armExchangeWatchdog(context, at: due)
            }
        }
    }

    private func armStallTimer(_ context: ChannelHandlerContext) {
        guard stallTimer == nil else { return }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let timeout = server.configuration.frameTimeout
        stallTimer = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.nanoseconds))) {
            let (handler, context) = bound.value
            handler.drop(context, "left its answers unread for \(timeout) with more requests waiting")
        }
    }

    private func cancelTimers() {
        frameTimer?.cancel()
        exchangeWatchdog?.cancel()
        stallTimer?.cancel()
        frameTimer = nil
        exchangeWatchdog = nil
        exchangeDeadline = nil
        stallTimer = nil
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// Holds a commit exchange granted while `beginExchange` had not returned yet
/// (on the event loop's own thread); after ``close()`` it takes nothing.
private final class GrantedAtOnce: @unchecked Sendable {
    private var result: Result<CommitExchange, any Error>?
    private var closed = false

    /// Keeps `result` and returns true unless closed. Called on the loop's thread.
    func take(_ result: Result<CommitExchange, any Error>) -> Bool {
        guard !closed else { return false }
        self.result = result
        return true
    }

    /// What was granted at once, if anything; later grants go their own way.
    func close() -> Result<CommitExchange, any Error>? {
        closed = true
        return result
    }
}

using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

using Orchestrator.Core.Reliability;

using Orchestrator.Core.Collectives;

namespace Orchestrator.Core.DataPlane;

/// <summary>Who takes part in one membership epoch of a job's collective, and where each rank listens.</summary>
public sealed record RankMembership(string JobId, long MembershipEpoch, IReadOnlyList<IPEndPoint> Endpoints)
{
    public int Size => Endpoints.Count;

    /// <summary>A stable 64-bit id of the job for frame headers (FNV-1a; string.GetHashCode differs per process).</summary>
    public ulong JobKey
    {
        get
        {
            var hash = 14695981039346656037UL;
            foreach (var c in JobId) hash = (hash ^ c) * 1099511628211UL;
            return hash;
        }
    }
}

/// <summary>
/// The data plane between the ranks of one job: a TCP connection per pair of ranks, length-prefixed frames of raw
/// little-endian bytes. Every frame carries the job, the membership epoch, the step and a tag; a frame from
/// another job or membership epoch is refused and closes its connection. Every receive has a deadline, so a frozen peer
/// becomes a <see cref="PeerFailedException"/> instead of a hang.
/// Header: magic u32 | job u64 | membership epoch i64 | step i64 | tag i32 | length i32 (36 bytes).
/// A header's length is trusted for nothing: a frame is read straight into the receive that wants it, after its length
/// is checked against that receive's; only small frames that arrive before their receive are held, a bounded number
/// of them; a larger early frame waits (unread, the connection backs up) until its receive is posted, and a frame no
/// receive wants within the receive timeout, or longer than <see cref="MaxFrameBytes"/>, closes its connection.
/// </summary>
public sealed class TcpRankTransport : IRankTransport, IAsyncDisposable
{
    const uint Magic = 0x4F524348; // "ORCH"
    internal const int HeaderBytes = 36;
    internal const int SocketBufferBytes = 4 << 20;
    readonly RankMembership _membership;
    readonly RankListener _listener;
    readonly bool _ownsListener;
    readonly ConcurrentDictionary<int, Peer> _peers = new();
    // Under _lock: frames that arrived before their receive, and receives waiting for their frame. A frame for a
    // waiting receive is read straight into its destination (no copy, no allocation).
    readonly object _lock = new();
    readonly Dictionary<(int Peer, long Step, int Tag), Queue<byte[]>> _arrived = [];
    readonly Dictionary<(int Peer, long Step, int Tag), (Memory<byte> Destination, TaskCompletionSource Done)> _posted = [];
    // Large frames that arrived before their receive, waiting unread for it to be posted.
    readonly Dictionary<(int Peer, long Step, int Tag), TaskCompletionSource> _early = [];
    int _heldFrames;
    readonly Dictionary<int, string> _badFrames = [];
    readonly HashSet<int> _lost = [];
    readonly CancellationTokenSource _closing = new();

    public int Rank { get; }
    public int Size => _membership.Size;
    public long MembershipEpoch => _membership.MembershipEpoch;

    /// <summary>How long a receive waits for its frame before the peer is declared failed.</summary>
    public TimeSpan ReceiveTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The longest frame accepted: longer ones close the connection before anything is read or allocated.</summary>
    public int MaxFrameBytes { get; set; } = int.MaxValue;

    /// <summary>Frames up to this size that arrive before their receive are held in memory (exchanges, Adasum
    /// partials, the length of a byte broadcast); larger ones wait unread for their receive.</summary>
    public const int HeldFrameBytes = 64 << 10;

    /// <summary>Most early frames held at once. A peer runs at most a few frames ahead of its receiver (it waits for
    /// the receiver's frames in turn), so more means a peer that sends what nobody will receive: its connection closes.</summary>
    public const int MaxHeldFrames = 256;

    /// <summary>Frames and connections refused because they named another job or an older membership epoch.</summary>
    public int RefusedFrames => _refused + _listener.Refused;
    int _refused;

    TcpRankTransport(RankMembership membership, int rank, RankListener listener, bool ownsListener)
    {
        (_membership, Rank, _listener, _ownsListener) = (membership, rank, listener, ownsListener);
        listener.OpenMembershipEpoch(membership.JobKey, membership.MembershipEpoch);
        // Lower ranks dial us: adopt their connections as they arrive.
        for (int peer = 0; peer < rank; peer++) _ = Adopt(peer);
    }

    /// <summary>Listens on a free port of <paramref name="address"/>; report its endpoint to the rendezvous.</summary>
    public static RankListener BindListener(IPAddress address) => RankListener.Bind(address);

    /// <summary>
    /// Starts the rank's side of one membership epoch on a listener bound before the endpoints were exchanged.
    /// With <paramref name="keepListener"/> the listener outlives this transport, for the rank's next membership epochs.
    /// </summary>
    public static TcpRankTransport Start(RankMembership membership, int rank, RankListener listener, bool keepListener = false)
    {
        if (rank < 0 || rank >= membership.Size) throw new ArgumentOutOfRangeException(nameof(rank));
        return new TcpRankTransport(membership, rank, listener, !keepListener);
    }

    public async ValueTask Send(int peer, long step, int tag, ReadOnlyMemory<byte> payload, CancellationToken ct = default)
    {
        var connection = await Connect(peer, ct);
        var header = new byte[HeaderBytes];
        WriteHeader(header, step, tag, payload.Length);
        await connection.Lock.WaitAsync(ct);
        try
        {
            await connection.Stream.WriteAsync(header, ct);
            await connection.Stream.WriteAsync(payload, ct);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            throw new PeerFailedException(peer, PeerFailure.ConnectionLost, $"rank {Rank}: sending to rank {peer} failed: {e.Message}", e);
        }
        finally
        {
            connection.Lock.Release();
        }
    }

    /// <summary>Receives the frame with this step and tag from <paramref name="peer"/> into <paramref name="destination"/>.</summary>
    public async ValueTask Receive(int peer, long step, int tag, Memory<byte> destination, CancellationToken ct = default)
    {
        if (Rank < peer) await Connect(peer, ct); // the lower rank dials; its read loop starts with the connection
        var key = (peer, step, tag);
        byte[]? frame = null;
        var posted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_arrived.TryGetValue(key, out var queue) && queue.TryDequeue(out frame))
            {
                if (queue.Count == 0) _arrived.Remove(key);
                _heldFrames--;
            }
            else if (_badFrames.TryGetValue(peer, out var bad))
                throw new PeerFailedException(peer, PeerFailure.BadFrame, bad);
            else if (_lost.Contains(peer))
                throw new PeerFailedException(peer, PeerFailure.ConnectionLost, $"rank {Rank}: connection to rank {peer} closed");
            else
            {
                _posted[key] = (destination, posted);
                if (_early.Remove(key, out var early)) early.TrySetResult();
            }
        }
        if (frame is not null)
        {
            if (frame.Length != destination.Length)
                throw new PeerFailedException(peer, PeerFailure.BadFrame, $"rank {Rank}: rank {peer} sent {frame.Length} bytes for step {step} tag {tag}, expected {destination.Length}");
            frame.CopyTo(destination.Span);
            return;
        }
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct, _closing.Token);
        deadline.CancelAfter(ReceiveTimeout);
        try
        {
            await posted.Task.WaitAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new PeerFailedException(peer, PeerFailure.Silent, $"rank {Rank}: nothing from rank {peer} for step {step} (tag {tag}) within {ReceiveTimeout.TotalSeconds:0.#} s");
        }
        finally
        {
            lock (_lock) _posted.Remove(key);
        }
    }

    void WriteHeader(Span<byte> h, long step, int tag, int length)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(h, Magic);
        BinaryPrimitives.WriteUInt64LittleEndian(h[4..], _membership.JobKey);
        BinaryPrimitives.WriteInt64LittleEndian(h[12..], _membership.MembershipEpoch);
        BinaryPrimitives.WriteInt64LittleEndian(h[20..], step);
        BinaryPrimitives.WriteInt32LittleEndian(h[28..], tag);
        BinaryPrimitives.WriteInt32LittleEndian(h[32..], length);
    }

    sealed class Peer(TcpClient client)
    {
        public TcpClient Client { get; } = client;
        public NetworkStream Stream { get; } = client.GetStream();
        public SemaphoreSlim Lock { get; } = new(1, 1);
    }

    readonly ConcurrentDictionary<int, Lazy<Task<Peer>>> _dialing = new();

    /// <summary>The lower rank of a pair dials; the higher one waits for it to be accepted.</summary>
    async ValueTask<Peer> Connect(int peer, CancellationToken ct)
    {
        if (_peers.TryGetValue(peer, out var existing)) return existing;
        if (peer == Rank || peer < 0 || peer >= Size) throw new ArgumentOutOfRangeException(nameof(peer));
        if (Rank > peer)
        {
            var deadline = DateTime.UtcNow + ReceiveTimeout;
            while (!_peers.TryGetValue(peer, out existing))
            {
                if (DateTime.UtcNow > deadline) throw new PeerFailedException(peer, PeerFailure.Unreachable, $"rank {Rank}: rank {peer} never connected");
                await Task.Delay(2, ct);
            }
            return existing;
        }
        return await _dialing.GetOrAdd(peer, p => new Lazy<Task<Peer>>(() => Dial(p))).Value;
    }

    async Task<Peer> Dial(int peer)
    {
        var client = new TcpClient { NoDelay = true, SendBufferSize = SocketBufferBytes, ReceiveBufferSize = SocketBufferBytes };
        try
        {
            using var timeout = new CancellationTokenSource(ReceiveTimeout);
            await client.ConnectAsync(_membership.Endpoints[peer], timeout.Token);
        }
        catch (Exception e)
        {
            client.Dispose();
            throw new PeerFailedException(peer, PeerFailure.Unreachable, $"rank {Rank}: cannot connect to rank {peer} at {_membership.Endpoints[peer]}: {e.Message}", e);
        }
        var connection = new Peer(client);
        // Hello: who we are, for this job and membership epoch.
        var hello = new byte[HeaderBytes];
        WriteHeader(hello, step: -1, tag: Rank, length: 0);
        await connection.Stream.WriteAsync(hello);
        _peers[peer] = connection;
        _ = ReadLoop(peer, connection);
        return connection;
    }

    async Task Adopt(int peer)
    {
        TcpClient client;
        try { client = await _listener.Take(_membership.JobKey, _membership.MembershipEpoch, peer, _closing.Token); }
        catch (Exception) { return; }
        var connection = new Peer(client);
        _peers[peer] = connection;
        await ReadLoop(peer, connection);
    }

    /// <summary>Parses a frame header; false when it is not an Orchestrator frame.</summary>
    internal static bool TryReadHeader(ReadOnlySpan<byte> h, out ulong job, out long membershipEpoch, out long step, out int tag)
    {
        job = BinaryPrimitives.ReadUInt64LittleEndian(h[4..]);
        membershipEpoch = BinaryPrimitives.ReadInt64LittleEndian(h[12..]);
        step = BinaryPrimitives.ReadInt64LittleEndian(h[20..]);
        tag = BinaryPrimitives.ReadInt32LittleEndian(h[28..]);
        return BinaryPrimitives.ReadUInt32LittleEndian(h) == Magic;
    }

    /// <summary>True when the header is ours (magic, job, membership epoch); <paramref name="tag"/> is its tag.</summary>
    bool Matches(ReadOnlySpan<byte> h, out int tag) =>
        TryReadHeader(h, out var job, out var membershipEpoch, out _, out tag) && job == _membership.JobKey && membershipEpoch == _membership.MembershipEpoch;

    async Task ReadLoop(int peer, Peer connection)
    {
        var header = new byte[HeaderBytes];
        string? bad = null;
        try
        {
            while (!_closing.IsCancellationRequested)
            {
                await connection.Stream.ReadExactlyAsync(header, _closing.Token);
                if (!Matches(header, out var tag))
                {
                    // Another membership epoch's (or job's) frame: refuse it and drop the connection.
                    Interlocked.Increment(ref _refused);
                    break;
                }
                var step = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(20));
                var length = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(32));
                if (length < 0 || length > MaxFrameBytes)
                {
                    bad = $"rank {Rank}: rank {peer} sent a frame of {length} bytes for step {step} tag {tag} (at most {MaxFrameBytes} are accepted)";
                    break;
                }
                var key = (peer, step, tag);
                var (destination, done, why) = await Destination(key, length);
                if (why is not null)
                {
                    bad = why;
                    break;
                }
                if (done is not null)
                {
                    await connection.Stream.ReadExactlyAsync(destination, _closing.Token);
                    done.TrySetResult();
                    continue;
                }
                var payload = GC.AllocateUninitializedArray<byte>(length);
                await connection.Stream.ReadExactlyAsync(payload, _closing.Token);
                lock (_lock)
                {
                    // A receive may have been posted while the payload was read.
                    if (_posted.Remove(key, out var late))
                    {
                        if (late.Destination.Length == length)
                        {
                            payload.CopyTo(late.Destination.Span);
                            late.Done.TrySetResult();
                            _heldFrames--;
                            continue;
                        }
                        late.Done.TrySetException(new PeerFailedException(peer, PeerFailure.BadFrame, LengthMismatch(peer, step, tag, length, late.Destination.Length)));
                    }
                    if (!_arrived.TryGetValue(key, out var queue)) _arrived[key] = queue = new Queue<byte[]>();
                    queue.Enqueue(payload);
                }
            }
        }
        catch (Exception)
        {
            // Connection lost: pending and later receives from this peer fail at once.
        }
        _peers.TryRemove(peer, out _);
        lock (_lock)
        {
            _lost.Add(peer);
            if (bad is not null) _badFrames.TryAdd(peer, bad);
            foreach (var (key, waiter) in _posted)
                if (key.Peer == peer)
                    waiter.Done.TrySetException(bad is not null
                        ? new PeerFailedException(peer, PeerFailure.BadFrame, bad)
                        : new PeerFailedException(peer, PeerFailure.ConnectionLost, $"rank {Rank}: connection to rank {peer} closed"));
        }
        connection.Client.Dispose();
    }

    string LengthMismatch(int peer, long step, int tag, int length, int expected) =>
        $"rank {Rank}: rank {peer} sent {length} bytes for step {step} tag {tag}, expected {expected}";

    /// <summary>
    /// Where a frame of <paramref name="length"/> bytes goes: the destination of the receive posted for it (its length
    /// checked), or nowhere yet (null: read it into a held buffer, for a small frame with a free slot); a large frame
    /// waits for its receive. <c>Why</c> says why the frame is refused instead.
    /// </summary>
    async Task<(Memory<byte> Destination, TaskCompletionSource? Done, string? Why)> Destination((int Peer, long Step, int Tag) key, int length)
    {
        TaskCompletionSource? early = null;
        lock (_lock)
        {
            if (_posted.Remove(key, out var waiter)) return Checked(waiter);
            if (length <= HeldFrameBytes)
            {
                if (_heldFrames >= MaxHeldFrames)
                    return (default, null, $"rank {Rank}: rank {key.Peer} sent more than {MaxHeldFrames} frames no receive wanted yet (the latest for step {key.Step} tag {key.Tag})");
                _heldFrames++;
                return (default, null, null);
            }
            _early[key] = early = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_closing.Token);
        deadline.CancelAfter(ReceiveTimeout);
        try { await early.Task.WaitAsync(deadline.Token); }
        catch (OperationCanceledException) { }
        lock (_lock)
        {
            _early.Remove(key);
            return _posted.Remove(key, out var waiter)
                ? Checked(waiter)
                : (default, null, $"rank {Rank}: rank {key.Peer} sent a frame of {length} bytes for step {key.Step} tag {key.Tag} that no receive wanted within {ReceiveTimeout.TotalSeconds:0.#} s");
        }

        (Memory<byte>, TaskCompletionSource?, string?) Checked((Memory<byte> Destination, TaskCompletionSource Done) waiter)
        {
            if (waiter.Destination.Length == length) return (waiter.Destination, waiter.Done, null);
            var why = LengthMismatch(key.Peer, key.Step, key.Tag, length, waiter.Destination.Length);
            waiter.Done.TrySetException(new PeerFailedException(key.Peer, PeerFailure.BadFrame, why));
            return (default, null, why);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _closing.Cancel();
        foreach (var p in _peers.Values) p.Client.Dispose();
        if (_ownsListener) await _listener.DisposeAsync();
    }
}

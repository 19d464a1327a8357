using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Orchestrator.Core.DataPlane;

/// <summary>
/// A rank's data-plane endpoint, bound once for the rank's life so that its address stays valid across
/// membership epochs. It accepts connections, reads each one's hello (job, membership epoch, dialing rank) and hands the
/// connection to that membership epoch's transport. A hello for a membership epoch not started here yet is held until it is
/// (a faster peer may already be in the next one); a hello for a membership epoch older than the newest one started is
/// refused and closed. Nothing a stranger sends is kept for long: a connection that does not say hello within
/// <see cref="HelloTimeout"/> is closed, a held hello expires after <see cref="HeldHelloLifetime"/>, at most
/// <see cref="MaxHeldHellos"/> are held and <see cref="MaxHandshakes"/> hellos awaited at once, and once a job has
/// started here hellos for any other job are refused.
/// </summary>
public sealed class RankListener : IAsyncDisposable
{
    public static readonly TimeSpan DefaultHelloTimeout = TimeSpan.FromSeconds(10);
    /// <summary>A faster peer's hello waits this long (by default) for its membership epoch to start here.</summary>
    public static readonly TimeSpan DefaultHeldHelloLifetime = TimeSpan.FromSeconds(60);
    /// <summary>Lower ranks dial higher ones, so a rank holds at most one hello per lower rank of the next epoch.</summary>
    public const int MaxHeldHellos = 256;
    public const int MaxHandshakes = 256;
    readonly TcpListener _listener;
    readonly CancellationTokenSource _closing = new();
    readonly Task _accepting;
    readonly object _lock = new();
    readonly Dictionary<(ulong Job, long MembershipEpoch, int Peer), (TcpClient Client, DateTime Since)> _held = [];
    int _handshakes;
    readonly Dictionary<(ulong Job, long MembershipEpoch, int Peer), TaskCompletionSource<TcpClient>> _waiting = [];
    readonly Dictionary<ulong, long> _newestMembershipEpoch = [];
    int _refused;

    RankListener(TcpListener listener, TimeSpan helloTimeout, TimeSpan heldHelloLifetime)
    {
        (_listener, HelloTimeout, HeldHelloLifetime) = (listener, helloTimeout, heldHelloLifetime);
        _accepting = AcceptLoop();
    }

    /// <summary>Listens on a free port of <paramref name="address"/>.</summary>
    public static RankListener Bind(IPAddress address, TimeSpan? helloTimeout = null, TimeSpan? heldHelloLifetime = null)
    {
        var listener = new TcpListener(address, 0);
        listener.Start(64);
        return new RankListener(listener, helloTimeout ?? DefaultHelloTimeout, heldHelloLifetime ?? DefaultHeldHelloLifetime);
    }

    /// <summary>How long a new connection has to send its hello.</summary>
    public TimeSpan HelloTimeout { get; }

    /// <summary>How long a hello for a membership epoch not started here is held.</summary>
    public TimeSpan HeldHelloLifetime { get; }

    /// <summary>The address to report to the rendezvous.</summary>
    public IPEndPoint LocalEndpoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>Connections refused: no hello, a malformed one, another job's, a membership epoch older than the newest
    /// started here, or more than the listener holds.</summary>
    public int Refused => _refused;

    /// <summary>Hellos held now for membership epochs not started here yet.</summary>
    public int Held
    {
        get { lock (_lock) return _held.Count; }
    }

    /// <summary>Starts a membership epoch of a job here: connections of its older ones are refused from now on.</summary>
    internal void OpenMembershipEpoch(ulong job, long membershipEpoch)
    {
        lock (_lock)
        {
            if (_newestMembershipEpoch.TryGetValue(job, out var newest) && newest >= membershipEpoch) return;
            _newestMembershipEpoch[job] = membershipEpoch;
            foreach (var key in _held.Keys.Where(k => k.Job == job && k.MembershipEpoch < membershipEpoch).ToList())
            {
                _held.Remove(key, out var stale);
                stale.Client.Dispose();
                _refused++;
            }
        }
    }

    /// <summary>The connection that rank <paramref name="peer"/> dialed for this job and membership epoch (its hello consumed).</summary>
    internal async Task<TcpClient> Take(ulong job, long membershipEpoch, int peer, CancellationToken ct)
    {
        var key = (job, membershipEpoch, peer);
        TaskCompletionSource<TcpClient> waiter;
        lock (_lock)
        {
            if (_held.Remove(key, out var ready)) return ready.Client;
            waiter = _waiting[key] = new TaskCompletionSource<TcpClient>(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        try
        {
            return await waiter.Task.WaitAsync(ct);
        }
        finally
        {
            lock (_lock)
            {
                if (_waiting.TryGetValue(key, out var current) && current == waiter) _waiting.Remove(key);
            }
        }
    }

    async Task AcceptLoop()
    {
        while (!_closing.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_closing.Token); }
            catch (Exception) { return; }
            if (Interlocked.Increment(ref _handshakes) > MaxHandshakes)
            {
                Interlocked.Decrement(ref _handshakes);
                Interlocked.Increment(ref _refused);
                client.Dispose();
                continue;
            }
            client.NoDelay = true;
            client.SendBufferSize = client.ReceiveBufferSize = TcpRankTransport.SocketBufferBytes;
            _ = Handshake(client).ContinueWith(_ => Interlocked.Decrement(ref _handshakes), TaskScheduler.Default);
        }
    }

    async Task Handshake(TcpClient client)
    {
        var hello = new byte[TcpRankTransport.HeaderBytes];
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_closing.Token);
            timeout.CancelAfter(HelloTimeout);
            await client.GetStream().ReadExactlyAsync(hello, timeout.Token);
        }
        catch (Exception)
        {
            client.Dispose();
            return;
        }
        if (!TcpRankTransport.TryReadHeader(hello, out var job, out var membershipEpoch, out var step, out var peer)
            || step != -1 || peer < 0 || BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(32)) != 0)
        {
            Interlocked.Increment(ref _refused);
            client.Dispose();
            return;
        }
        var key = (job, membershipEpoch, peer);
        lock (_lock)
        {
            var otherJob = _newestMembershipEpoch.Count > 0 && !_newestMembershipEpoch.ContainsKey(job);
            if (otherJob || (_newestMembershipEpoch.TryGetValue(job, out var newest) && membershipEpoch < newest))
            {
                _refused++;
                client.Dispose();
                return;
            }
            if (_waiting.Remove(key, out var waiter) && waiter.TrySetResult(client)) return;
            if (_held.Remove(key, out var replaced)) replaced.Client.Dispose(); // the peer dialed again: keep the newest
            ExpireHeld();
            if (_held.Count >= MaxHeldHellos)
            {
                _refused++;
                client.Dispose();
                return;
            }
            _held[key] = (client, DateTime.UtcNow);
        }
        // Expire it if its membership epoch never starts here (the peer's job moved on, or it was never ours).
        _ = Task.Delay(HeldHelloLifetime, _closing.Token).ContinueWith(_ =>
        {
            lock (_lock)
            {
                if (!_held.TryGetValue(key, out var still) || still.Client != client) return;
                _held.Remove(key);
                client.Dispose();
                _refused++;
            }
        }, TaskScheduler.Default);
    }

    /// <summary>Closes held hellos older than <see cref="HeldHelloLifetime"/> (under the lock).</summary>
    void ExpireHeld()
    {
        var now = DateTime.UtcNow;
        foreach (var (key, held) in _held.Where(h => now - h.Value.Since >= HeldHelloLifetime).ToList())
        {
            _held.Remove(key);
            held.Client.Dispose();
            _refused++;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _closing.Cancel();
        _listener.Stop();
        try { await _accepting; } catch (Exception) { }
        lock (_lock)
        {
            foreach (var c in _held.Values) c.Client.Dispose();
            _held.Clear();
            foreach (var w in _waiting.Values) w.TrySetCanceled();
        }
    }
}

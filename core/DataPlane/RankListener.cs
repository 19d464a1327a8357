using System.Net;
using System.Net.Sockets;

namespace Orchestrator.Core.DataPlane;

/// <summary>
/// A rank's data-plane endpoint, bound once for the rank's life so that its address stays valid across
/// membership epochs. It accepts connections, reads each one's hello (job, membership epoch, dialing rank) and hands the
/// connection to that membership epoch's transport. A hello for a membership epoch not started here yet is held until it is
/// (a faster peer may already be in the next one); a hello for a membership epoch older than the newest one started is
/// refused and closed.
/// </summary>
public sealed class RankListener : IAsyncDisposable
{
    static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(10);
    readonly TcpListener _listener;
    readonly CancellationTokenSource _closing = new();
    readonly Task _accepting;
    readonly object _lock = new();
    readonly Dictionary<(ulong Job, long MembershipEpoch, int Peer), TcpClient> _held = [];
    readonly Dictionary<(ulong Job, long MembershipEpoch, int Peer), TaskCompletionSource<TcpClient>> _waiting = [];
    readonly Dictionary<ulong, long> _newestMembershipEpoch = [];
    int _refused;

    RankListener(TcpListener listener)
    {
        _listener = listener;
        _accepting = AcceptLoop();
    }

    /// <summary>Listens on a free port of <paramref name="address"/>.</summary>
    public static RankListener Bind(IPAddress address)
    {
        var listener = new TcpListener(address, 0);
        listener.Start(64);
        return new RankListener(listener);
    }

    /// <summary>The address to report to the rendezvous.</summary>
    public IPEndPoint LocalEndpoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>Connections refused because their hello named a membership epoch older than the newest started here.</summary>
    public int Refused => _refused;

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
                stale!.Dispose();
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
            if (_held.Remove(key, out var ready)) return ready;
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
            client.NoDelay = true;
            client.SendBufferSize = client.ReceiveBufferSize = TcpRankTransport.SocketBufferBytes;
            _ = Handshake(client);
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
        if (!TcpRankTransport.TryReadHeader(hello, out var job, out var membershipEpoch, out _, out var peer))
        {
            Interlocked.Increment(ref _refused);
            client.Dispose();
            return;
        }
        lock (_lock)
        {
            if (_newestMembershipEpoch.TryGetValue(job, out var newest) && membershipEpoch < newest)
            {
                _refused++;
                client.Dispose();
                return;
            }
            var key = (job, membershipEpoch, peer);
            if (_waiting.Remove(key, out var waiter) && waiter.TrySetResult(client)) return;
            if (_held.Remove(key, out var replaced)) replaced.Dispose(); // the peer dialed again: keep the newest
            _held[key] = client;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _closing.Cancel();
        _listener.Stop();
        try { await _accepting; } catch (Exception) { }
        lock (_lock)
        {
            foreach (var c in _held.Values) c.Dispose();
            _held.Clear();
            foreach (var w in _waiting.Values) w.TrySetCanceled();
        }
    }
}

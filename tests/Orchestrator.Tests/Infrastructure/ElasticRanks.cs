using Orchestrator.Core.Collectives;
using Orchestrator.Core.DataPlane;

namespace Orchestrator.Tests.Infrastructure;

/// <summary>Per-rank listeners that outlive membership epochs, as a worker's rank runner keeps them.</summary>
public sealed class ElasticRanks(int n) : IAsyncDisposable
{
    readonly List<RankListener> _listeners = Enumerable.Range(0, n).Select(_ => TcpRankTransport.BindListener(System.Net.IPAddress.Loopback)).ToList();

    /// <summary>The transport of rank <paramref name="rank"/> in an epoch whose members are the given original ranks.</summary>
    public TcpRankTransport MembershipEpoch(long membershipEpoch, IReadOnlyList<int> members, int original)
    {
        var endpoints = members.Select(m => _listeners[m].LocalEndpoint).ToList();
        var transport = TcpRankTransport.Start(new RankMembership("elastic", membershipEpoch, endpoints), members.ToList().IndexOf(original), _listeners[original], keepListener: true);
        transport.ReceiveTimeout = TimeSpan.FromSeconds(2);
        return transport;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var l in _listeners) await l.DisposeAsync();
    }
}

using System.Net;
using Orchestrator.Core.Collectives;
using Orchestrator.Core.DataPlane;

namespace Orchestrator.Tests.Infrastructure;

/// <summary>N ranks of one membership on loopback sockets in this process, run side by side.</summary>
public static class LoopbackRanks
{
    public static async Task<T[]> Run<T>(int n, Func<Collective, int, Task<T>> body, long epoch = 1)
    {
        var listeners = Enumerable.Range(0, n).Select(_ => TcpRankTransport.BindListener(IPAddress.Loopback)).ToList();
        var membership = new RankMembership("job-test", epoch, listeners.Select(l => l.LocalEndpoint).ToList());
        var transports = listeners.Select((l, r) => TcpRankTransport.Start(membership, r, l)).ToList();
        try
        {
            var ranks = transports.Select((t, r) => Task.Run(() => body(new Collective(t), r))).ToList();
            try { return await Task.WhenAll(ranks); }
            catch (Exception)
            {
                var errors = ranks.Select((t, r) => t.Exception is { } e ? $"rank {r}: {e.GetBaseException().Message}" : null).OfType<string>();
                throw new InvalidOperationException(string.Join("; ", errors));
            }
        }
        finally
        {
            foreach (var t in transports) await t.DisposeAsync();
        }
    }
}

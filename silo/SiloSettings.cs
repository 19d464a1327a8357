using System.Net;
using Microsoft.Extensions.Hosting;
using Orchestrator.Client;
using Orchestrator.Contracts;
using Orchestrator.Grains;
using Orleans.Configuration;
using Orleans.Storage;

namespace Orchestrator.Silo;

/// <param name="Redis">HOST:PORT for clustering and grain storage; null for the embedded default (one local silo, memory storage).</param>
/// <param name="MaxArrayWidth">Most compatible jobs fused into one array on one device.</param>
/// <param name="FastFailureDetection">Probe every second and declare a silo dead after two missed probes and one vote
/// (about 1-2 s), instead of Orleans' defaults (about 10-12 s). For tests and chaos runs on one machine.</param>
/// <param name="AllowChaos">Accept failure injection (orch chaos ...); refused otherwise.</param>
public sealed record SiloSettings(
    string? Redis,
    int SiloPort = ClusterConnection.DefaultSiloPort,
    int GatewayPort = ClusterConnection.DefaultGatewayPort,
    string AdvertisedAddress = "127.0.0.1",
    bool FastFailureDetection = false,
    TimeSpan? NodeHeartbeatTimeout = null,
    int MaxArrayWidth = Orchestrator.Core.Scheduling.PriorityBestFitPolicy.DefaultMaxArrayWidth,
    bool AllowChaos = false)
{
    /// <summary>Where the silo's ports (silo, gateway, web) listen: the advertised address alone when it is a loopback
    /// address (localhost, 127.x, ::1), so that nothing outside this machine reaches them; every address of the host
    /// otherwise (a container advertises a name that resolves to one of its addresses).</summary>
    public IPAddress ListenAddress => IPAddress.IsLoopback(Advertised) ? Advertised : IPAddress.Any;

    IPAddress Advertised => ClusterConnection.ResolveAddress(AdvertisedAddress, "--advertise");

    public void Configure(ISiloBuilder silo)
    {
        silo.Configure<ClusterOptions>(o =>
        {
            o.ClusterId = ClusterConnection.ClusterId;
            o.ServiceId = ClusterConnection.ServiceId;
        });
        silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(10));
        if (Redis is null)
        {
            silo.UseLocalhostClustering(SiloPort, GatewayPort, serviceId: ClusterConnection.ServiceId, clusterId: ClusterConnection.ClusterId);
            silo.AddMemoryGrainStorage(StorageNames.State);
            silo.AddMemoryGrainStorage(StorageNames.Checkpoints);
        }
        else
        {
            silo.UseRedisClustering(Redis);
            silo.ConfigureEndpoints(Advertised, SiloPort, GatewayPort, listenOnAnyHostAddress: ListenAddress.Equals(IPAddress.Any));
            foreach (var name in new[] { StorageNames.State, StorageNames.Checkpoints })
            {
                // Orleans' binary serializer instead of the default JSON one: exact, and compact for byte[] checkpoints.
                silo.AddRedisGrainStorage(name, ob => ob.Configure<Orleans.Serialization.Serializer>((o, serializer) =>
                {
                    o.ConfigurationOptions = StackExchange.Redis.ConfigurationOptions.Parse(Redis);
                    o.GrainStorageSerializer = new OrleansGrainStorageSerializer(serializer);
                }));
            }
        }
        if (FastFailureDetection)
        {
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromSeconds(1);
                o.NumMissedProbesLimit = 2;
                o.NumVotesForDeathDeclaration = 1;
                o.TableRefreshTimeout = TimeSpan.FromSeconds(2);
                o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(5);
            });
        }
        silo.AddOrchestrator(o =>
        {
            if (NodeHeartbeatTimeout is { } t) o.NodeHeartbeatTimeout = t;
            o.MaxArrayWidth = MaxArrayWidth;
            o.AllowChaos = AllowChaos;
        });
    }
}

using Orleans.TestingHost;

namespace Orchestrator.Tests.Infrastructure;

/// <summary>Two in-process silos with memory storage and fast timings, shared by the grain tests.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public static readonly TimeSpan HeartbeatTimeout = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan RankSilenceLimit = TimeSpan.FromSeconds(1);
    public InProcessTestCluster Cluster { get; }

    public ClusterFixture(bool allowChaos = false)
    {
        var builder = new InProcessTestClusterBuilder(2);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddMemoryGrainStorage(StorageNames.State);
            silo.AddMemoryGrainStorage(StorageNames.Checkpoints);
            silo.AddOrchestrator(o =>
            {
                o.NodeHeartbeatTimeout = HeartbeatTimeout;
                o.RankSilenceLimit = RankSilenceLimit;
                o.SchedulerTickPeriod = TimeSpan.FromMilliseconds(200);
                o.AllowChaos = allowChaos;
            });
        });
        Cluster = builder.Build();
    }

    public IGrainFactory Grains => Cluster.Client;
    public async Task InitializeAsync()
    {
        await Cluster.DeployAsync();
        // Until both silos agree on membership, the grain directory can briefly hold two activations of a grain.
        await Cluster.WaitForLivenessToStabilizeAsync();
    }
    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

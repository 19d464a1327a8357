using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Orchestrator.Core.Scheduling;

namespace Orchestrator.Grains;

public static class SiloBuilderExtensions
{
    /// <summary>The strongly consistent grain directory the shard grains use.</summary>
    public const string ShardDirectory = "shards";

    /// <summary>Registers Orchestrator's services on a silo: the scheduling policy, options and the scheduler ticker.</summary>
    public static ISiloBuilder AddOrchestrator(this ISiloBuilder silo, Action<OrchestratorOptions>? configure = null)
    {
        silo.Services.AddOptions<OrchestratorOptions>().Configure(o => configure?.Invoke(o)).ValidateOnStart();
        silo.Services.AddSingleton<IValidateOptions<OrchestratorOptions>, OrchestratorOptionsValidator>();
        silo.Services.AddSingleton<ISchedulingPolicy>(sp =>
            SchedulingPolicies.Production(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<OrchestratorOptions>>().Value.MaxArrayWidth));
        silo.Services.AddHostedService<SchedulerTicker>();
        silo.Services.AddHostedService<MembershipWatcher>();
        silo.AddIncomingGrainCallFilter<StoreFailureFilter>();
        silo.AddIncomingGrainCallFilter<ChaosGate>();
        silo.Services.AddPlacementDirector<CodingGroupPlacement, CodingGroupPlacementDirector>();
        silo.Services.AddPlacementDirector<SiloNamedByKey, SiloNamedByKeyDirector>();
        // Shards keep their rows only in memory: a second activation of a live shard (which the default, eventually
        // consistent directory allows while it recovers from a dead silo) would look lost. This directory prevents it.
#pragma warning disable ORLEANSEXP003
        silo.AddDistributedGrainDirectory(ShardDirectory);
#pragma warning restore ORLEANSEXP003
        // After a silo crash that directory holds the dead silo's grains for RangeLeaseDuration minus the failure
        // detection window (30 s by default: a 22 s stall with fast detection), in case the silo is a zombie still
        // serving them. A shard update is deterministic per step and idempotent, so a zombie can at worst repeat
        // one: a short hold is enough.
        silo.Services.AddOptions<GrainDirectoryOptions>().Configure<IOptions<ClusterMembershipOptions>, IOptions<OrchestratorOptions>>((directory, membership, orchestrator) =>
            directory.RangeLeaseDuration = membership.Value.MaxProbeTimeout * membership.Value.NumMissedProbesLimit + orchestrator.Value.ShardDirectoryHold);
        return silo;
    }
}

using Orchestrator.Client;
using Orchestrator.Contracts;

namespace Orchestrator.Grains;

/// <summary>Cluster-wide settings of the control plane.</summary>
public sealed class OrchestratorOptions
{
    /// <summary>A node that sends no heartbeat for this long is declared dead and its work is rescheduled.</summary>
    public TimeSpan NodeHeartbeatTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often each silo asks the scheduler for a pass (liveness, reconciliation, placement).</summary>
    public TimeSpan SchedulerTickPeriod { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Most jobs fused into one array on one device (also bounded by the device's memory).</summary>
    public int MaxArrayWidth { get; set; } = Orchestrator.Core.Scheduling.PriorityBestFitPolicy.DefaultMaxArrayWidth;

    /// <summary>A rank reported as unreachable by a peer is removed once its process has been silent this long
    /// (its node's heartbeats come every second).</summary>
    public TimeSpan RankSilenceLimit { get; set; } = TimeSpan.FromSeconds(2.5);

    /// <summary>How long the shard grains' directory holds a crashed silo's shards before they may be activated and
    /// rebuilt elsewhere (guards against a silo declared dead that still runs).</summary>
    public TimeSpan ShardDirectoryHold { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Failure injection (<see cref="IChaosGrain"/>) is refused unless this is set (silo --allow-chaos).</summary>
    public bool AllowChaos { get; set; }

    /// <summary>Events kept per job; older ones are dropped (the count of dropped events is kept).</summary>
    public int MaxEventsPerJob { get; set; } = 200;

    /// <summary>Points kept of a job's training curve; when reached, every other point is dropped.</summary>
    public int MaxCurvePoints { get; set; } = 400;
}

public static class StorageNames
{
    /// <summary>Job, node, scheduler and index state: small, written often.</summary>
    public const string State = "orchestrator";

    /// <summary>Model checkpoints: larger, written every N steps.</summary>
    public const string Checkpoints = "checkpoints";
}

using Microsoft.Extensions.Options;

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

    /// <summary>Checkpoints a job keeps in the checkpoint store: the newest, and older ones to fall back to if the
    /// newest cannot be read. Older ones are removed by the workers' cleanup.</summary>
    public int CheckpointsKept { get; set; } = 2;
}

/// <summary>Refuses settings the control plane cannot run with, naming each, when the silo starts.</summary>
public sealed class OrchestratorOptionsValidator : IValidateOptions<OrchestratorOptions>
{
    public ValidateOptionsResult Validate(string? name, OrchestratorOptions o)
    {
        var problems = new List<string>();
        void Positive(TimeSpan value, string field)
        {
            if (value <= TimeSpan.Zero) problems.Add($"{field} is {value}: it must be positive");
        }
        Positive(o.NodeHeartbeatTimeout, nameof(o.NodeHeartbeatTimeout));
        Positive(o.SchedulerTickPeriod, nameof(o.SchedulerTickPeriod));
        Positive(o.RankSilenceLimit, nameof(o.RankSilenceLimit));
        if (o.ShardDirectoryHold < TimeSpan.Zero) problems.Add($"{nameof(o.ShardDirectoryHold)} is {o.ShardDirectoryHold}: it cannot be negative");
        if (o.MaxArrayWidth is < 1 or > 1024) problems.Add($"{nameof(o.MaxArrayWidth)} is {o.MaxArrayWidth}: give 1 (no fusion) to 1024");
        if (o.MaxEventsPerJob < 1) problems.Add($"{nameof(o.MaxEventsPerJob)} is {o.MaxEventsPerJob}: keep at least 1");
        if (o.MaxCurvePoints < 2) problems.Add($"{nameof(o.MaxCurvePoints)} is {o.MaxCurvePoints}: keep at least 2 (the curve is halved when full)");
        if (o.CheckpointsKept is < 1 or > 100) problems.Add($"{nameof(o.CheckpointsKept)} is {o.CheckpointsKept}: keep 1 to 100");
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}

public static class StorageNames
{
    /// <summary>Job, node, scheduler and index state: small, written often.</summary>
    public const string State = "orchestrator";

    /// <summary>References to a job's checkpoints (the bytes are in the checkpoint store), and shard tables'
    /// checkpoints.</summary>
    public const string Checkpoints = "checkpoints";
}

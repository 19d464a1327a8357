using System.Diagnostics;
using Orchestrator.Core.Reliability;
using Orchestrator.Core.Scheduling;

namespace Orchestrator.Core.Simulation;

/// <summary>How a large job gets over losing a node: roll back to its last checkpoint and be placed again whole;
/// rebuild the lost state from parity and go on (no rollback); or shrink to the survivors and go on, growing back.</summary>
public enum LargeJobRecovery { CheckpointRestart, ErasureCoded, ElasticShrink }

/// <summary>Node failures: Poisson at <see cref="PerThousandNodeDays"/> per 1,000 node-days (the study: 6.50 RSC-1,
/// 2.34 RSC-2), each taking its node out for an exponential repair time, with categories drawn by share.</summary>
public sealed record FailureModel(double PerThousandNodeDays = ReliabilityModel.Rsc1PerThousandNodeDays, double RepairHours = 4,
    Dictionary<FailureCategory, double>? Shares = null)
{
    /// <summary>For scenario files: every field at its default.</summary>
    public FailureModel() : this(ReliabilityModel.Rsc1PerThousandNodeDays) { }

    public IReadOnlyDictionary<FailureCategory, double> CategoryShares => Shares ?? new Dictionary<FailureCategory, double>
    {
        [FailureCategory.NodeLost] = 0.5, [FailureCategory.WorkerCrash] = 0.2, [FailureCategory.NetworkTimeout] = 0.2, [FailureCategory.OutOfMemory] = 0.1,
    };
}

/// <summary>
/// Detection and recovery times per mechanism, in seconds; the defaults are Orchestrator's own measurements on this
/// machine (docs/benchmarks.md, docs/chaos.md): a node declared dead after its 5 s heartbeat timeout, 7.9 s from a
/// failure to training again after a checkpoint restore, 2.1 s to write a checkpoint, 3.9 s to rebuild erasure-coded
/// shards, 4.7 s for a data-parallel gang to re-form without the lost ranks.
/// </summary>
public sealed record RecoveryTimes(
    double DetectionSeconds = 5,
    double RestartSeconds = 7.9,
    double CheckpointWriteSeconds = 2.1,
    double RebuildSeconds = 3.9,
    double ShrinkSeconds = 4.7,
    double StartSeconds = 30,
    double SmallCheckpointMinutes = 10,
    double? LargeCheckpointMinutes = null)
{
    /// <summary>For scenario files: every field at its default.</summary>
    public RecoveryTimes() : this(5) { }
}

/// <param name="FusionThroughput">Fused throughput of K jobs over the same K trained one after another, by K
/// (`orch bench fusion`); widths in between are interpolated. Each member of a K-wide array trains at
/// throughput(K)/K of its speed alone.</param>
public sealed record SimulationSettings(
    int Devices,
    double Days,
    int Seed,
    WorkloadModel? Workload = null,
    IReadOnlyList<SimJob>? Trace = null,
    FailureModel? Failures = null,
    RecoveryTimes? Recovery = null,
    LargeJobRecovery LargeRecovery = LargeJobRecovery.CheckpointRestart,
    bool Fusion = true,
    int MaxArrayWidth = PriorityBestFitPolicy.DefaultMaxArrayWidth,
    IReadOnlyDictionary<int, double>? FusionThroughput = null,
    int DevicesPerNode = ReliabilityModel.GpusPerNode,
    double SchedulingPeriodSeconds = 5)
{
    public static readonly IReadOnlyDictionary<int, double> MeasuredFusionThroughput = new Dictionary<int, double> { [1] = 1, [2] = 1.48, [4] = 1.32, [8] = 2.07, [16] = 1.92 };
}

public sealed record Stats(int Count, double Mean, double P50, double P99)
{
    public static Stats Of(IEnumerable<double> values)
    {
        var v = values.Order().ToList();
        if (v.Count == 0) return new(0, double.NaN, double.NaN, double.NaN);
        return new(v.Count, v.Average(), v[(int)(0.5 * (v.Count - 1))], v[(int)Math.Ceiling(0.99 * (v.Count - 1))]);
    }
}

/// <summary>A large job at the end of a run: its ETTR so far (or at its end) and how often a failure hit it.</summary>
public sealed record LargeJobOutcome(int Id, int Devices, double Ettr, int Interruptions, double WallHours, bool Completed);

/// <summary>What a simulated run measured. Times in hours unless named otherwise.</summary>
public sealed record SimulationResult(
    string Name,
    long Events,
    ulong EventLogHash,
    int JobsSubmitted,
    int JobsCompleted,
    double Utilization,
    Stats CompletionSmall,
    Stats CompletionLarge,
    Stats QueueingSmall,
    Stats QueueingLarge,
    Stats EttrLarge,
    IReadOnlyDictionary<FailureCategory, double> LostDeviceHours,
    int Failures,
    long Decisions,
    int Passes,
    double PolicySeconds,
    double WallSeconds,
    IReadOnlyList<LargeJobOutcome> LargeJobs)
{
    public double DecisionsPerSecond => PolicySeconds > 0 ? Decisions / PolicySeconds : 0;
}

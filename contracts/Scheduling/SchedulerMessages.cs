namespace Orchestrator.Contracts;

/// <param name="FusionKey">Jobs with equal keys may be fused into one array; null: the job runs alone.</param>
/// <param name="MemoryBytes">Estimated device memory of one array member.</param>
/// <param name="Gang">A data-parallel job: <see cref="Devices"/> (its minimum) at once, up to <see cref="MaxDevices"/>.</param>
/// <param name="Growth">A running data-parallel job asking for up to <see cref="MaxDevices"/> more ranks, one device each.</param>
[GenerateSerializer, Immutable, Alias("queued-job")]
public sealed record QueuedJob(string JobId, int Priority, long SubmitSequence, int Devices, string? FusionKey, long MemoryBytes,
    bool Gang = false, int MaxDevices = 0, bool Growth = false);

/// <summary>The cluster's healthy devices, and its largest device's memory and node (see <see cref="Orchestrator.Core.Scheduling.ClusterShape"/>).</summary>
[GenerateSerializer, Immutable, Alias("cluster-size")]
public sealed record ClusterSize(int Devices, long LargestDeviceMemoryBytes, string? LargestDeviceNode)
{
    public Orchestrator.Core.Scheduling.ClusterShape Shape => new(Devices, LargestDeviceMemoryBytes, LargestDeviceNode);

    public static ClusterSize Of(Orchestrator.Core.Scheduling.ClusterShape s) => new(s.Devices, s.LargestDeviceMemoryBytes, s.LargestDeviceNode);
}

[GenerateSerializer, Immutable, Alias("scheduler-info")]
public sealed record SchedulerInfo(IReadOnlyList<QueuedJob> Queue, IReadOnlyList<string> Nodes, long PlacementsMade);

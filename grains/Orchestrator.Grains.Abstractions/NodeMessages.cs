namespace Orchestrator.Grains;

public enum NodeHealth { Healthy, Dead }

/// <summary>What a worker runs right now, as reported in its heartbeat.</summary>
[GenerateSerializer, Immutable, Alias("running-work")]
public sealed record RunningWork(string JobId, long AssignmentEpoch, long Step);

/// <param name="Incarnation">Changes every time the worker process starts, so a restart is visible.</param>
[GenerateSerializer, Immutable, Alias("node-report")]
public sealed record NodeReport(string Incarnation, IReadOnlyList<string> Devices, long MemoryBytes, IReadOnlyList<RunningWork> Running, string Host, int ProcessId);

/// <summary>The heartbeat reply: the complete desired state, which workers reconcile toward, faults to inject (chaos
/// testing; each delivered once), and the node's lease: a worker that gets no reply for this long stops its work,
/// which the cluster has by then given to other nodes.</summary>
[GenerateSerializer, Immutable, Alias("node-directive")]
public sealed record NodeDirective(IReadOnlyList<Assignment> Desired, IReadOnlyList<NodeFault>? Faults = null, TimeSpan? Lease = null);

[GenerateSerializer, Immutable, Alias("node-info")]
public sealed record NodeInfo(
    string NodeId,
    NodeHealth Health,
    IReadOnlyList<string> Devices,
    long MemoryBytes,
    DateTime? LastHeartbeat,
    IReadOnlyList<Assignment> Assignments,
    string? Host,
    int? ProcessId,
    string? Incarnation,
    DateTime? FirstSeen = null);

/// <param name="FusionKey">Jobs with equal keys may be fused into one array; null: the job runs alone.</param>
/// <param name="MemoryBytes">Estimated device memory of one array member.</param>
/// <param name="Gang">A data-parallel job: <see cref="Devices"/> (its minimum) at once, up to <see cref="MaxDevices"/>.</param>
/// <param name="Growth">A running data-parallel job asking for up to <see cref="MaxDevices"/> more ranks, one device each.</param>
[GenerateSerializer, Immutable, Alias("queued-job")]
public sealed record QueuedJob(string JobId, int Priority, long SubmitSequence, int Devices, string? FusionKey, long MemoryBytes,
    bool Gang = false, int MaxDevices = 0, bool Growth = false);

[GenerateSerializer, Immutable, Alias("scheduler-info")]
public sealed record SchedulerInfo(IReadOnlyList<QueuedJob> Queue, IReadOnlyList<string> Nodes, long PlacementsMade);

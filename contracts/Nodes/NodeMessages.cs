namespace Orchestrator.Contracts;

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

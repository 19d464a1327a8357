namespace Orchestrator.Grains;

public enum NodeHealth { Healthy, Dead }

/// <summary>What a worker runs right now, as reported in its heartbeat.</summary>
[GenerateSerializer, Immutable, Alias("running-work")]
public sealed record RunningWork(string JobId, long Epoch, long Step);

/// <param name="Incarnation">Changes every time the worker process starts, so a restart is visible.</param>
[GenerateSerializer, Immutable, Alias("node-report")]
public sealed record NodeReport(string Incarnation, IReadOnlyList<string> Devices, long MemoryBytes, IReadOnlyList<RunningWork> Running, string Host, int ProcessId);

/// <summary>The heartbeat reply: the complete desired state. Workers reconcile toward it.</summary>
[GenerateSerializer, Immutable, Alias("node-directive")]
public sealed record NodeDirective(IReadOnlyList<Assignment> Desired);

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
    string? Incarnation);

[GenerateSerializer, Immutable, Alias("queued-job")]
public sealed record QueuedJob(string JobId, int Priority, long SubmitSequence, int Devices);

[GenerateSerializer, Immutable, Alias("scheduler-info")]
public sealed record SchedulerInfo(IReadOnlyList<QueuedJob> Queue, IReadOnlyList<string> Nodes, long PlacementsMade);

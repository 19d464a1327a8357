namespace Orchestrator.Contracts;

public enum FaultKind { KillWorker, HangWorker, SlowNode, DropCalls, NanGradients }

/// <summary>
/// A fault for a worker process, delivered with its node's next heartbeat reply. <paramref name="Seconds"/>: how
/// long a hang, slowdown or call loss lasts; <paramref name="DelayMs"/>: latency added to each of the node's calls;
/// <paramref name="Rate"/>: the fraction of its calls dropped; <paramref name="JobId"/>/<paramref name="Steps"/>:
/// the job whose rank on this node sends non-finite gradients, for that many steps.
/// </summary>
[GenerateSerializer, Immutable, Alias("node-fault")]
public sealed record NodeFault(FaultKind Kind, double Seconds = 0, double DelayMs = 0, double Rate = 0, string? JobId = null, int Steps = 0);

/// <summary>What a chaos command did: the process it hit and when (UTC, on the silo that injected it).</summary>
[GenerateSerializer, Immutable, Alias("chaos-result")]
public sealed record ChaosResult(string Target, string What, DateTime At);

/// <summary>Raised for every chaos command on a cluster whose silos were not started with --allow-chaos.</summary>
[GenerateSerializer, Alias("chaos-disabled")]
public sealed class ChaosDisabledException(string message) : Exception(message);

/// <summary>
/// Failure injection through the cluster itself (key: "cluster"), so that it works the same on one machine and in
/// Kubernetes: a silo is crashed by a grain placed on it; a worker's fault travels in its heartbeat reply.
/// Refused (<see cref="ChaosDisabledException"/>) unless the silos run with --allow-chaos.
/// </summary>
[Alias("chaos")]
public interface IChaosGrain : IGrainWithStringKey
{
    /// <summary>Crashes the silo (its parsable address, or null for a random active one): no graceful shutdown.</summary>
    [Alias("kill-silo")] Task<ChaosResult> KillSilo(string? silo);

    /// <summary>Delivers a fault to the node (null: a random healthy node) with its next heartbeat.</summary>
    [Alias("node-fault")] Task<ChaosResult> FaultNode(string? node, NodeFault fault);

    /// <summary>The node running rank <paramref name="rank"/> of a data-parallel job makes it send non-finite gradients.</summary>
    [Alias("nan-gradients")] Task<ChaosResult> NanGradients(string jobId, int rank, int steps);
}

/// <summary>A grain placed on the silo named by its key (a parsable silo address); it crashes that silo.</summary>
[Alias("silo-chaos")]
public interface ISiloChaosGrain : IGrainWithStringKey
{
    [Alias("crash")] Task<int> Crash();
}

namespace Orchestrator.Contracts;

public enum FaultKind { KillWorker, HangWorker, SlowNode, DropCalls, NanGradients }

/// <summary>
/// A fault for a worker process, delivered with its node's next heartbeat reply. <paramref name="Seconds"/>: how
/// long a hang, slowdown or call loss lasts; <paramref name="DelayMs"/>: latency added to each of the node's calls;
/// <paramref name="Rate"/>: the fraction of its calls dropped; <paramref name="JobId"/>/<paramref name="Steps"/>:
/// the job whose rank on this node sends non-finite gradients, for that many steps.
/// </summary>
[GenerateSerializer, Immutable, Alias("node-fault")]
public sealed record NodeFault(FaultKind Kind, double Seconds = 0, double DelayMs = 0, double Rate = 0, string? JobId = null, int Steps = 0)
{
    /// <summary>The longest hang, slowdown or call loss a fault may ask for: a fault ends, so an experiment cannot
    /// take a node off the cluster for good.</summary>
    public const double MaxSeconds = 3600;
    public const double MaxDelayMs = 60_000;
    public const int MaxSteps = 1000;

    /// <summary>Refuses a fault a worker could not apply or that would never end, naming the field.</summary>
    /// <exception cref="ArgumentException">A value is out of its range, or one the kind needs is missing.</exception>
    public void Validate()
    {
        static void Require(bool ok, string field, string why)
        {
            if (!ok) throw new ArgumentException($"fault.{field}: {why}", field);
        }
        Require(Enum.IsDefined(Kind), nameof(Kind), $"{(int)Kind} is not a fault kind ({string.Join(", ", Enum.GetNames<FaultKind>())})");
        if (Kind is FaultKind.HangWorker or FaultKind.SlowNode or FaultKind.DropCalls)
            Require(Seconds is > 0 and <= MaxSeconds, nameof(Seconds), $"{Seconds} is not a duration in seconds between 0 (exclusive) and {MaxSeconds}");
        if (Kind is FaultKind.SlowNode)
            Require(DelayMs is > 0 and <= MaxDelayMs, nameof(DelayMs), $"{DelayMs} is not a delay in milliseconds between 0 (exclusive) and {MaxDelayMs}");
        if (Kind is FaultKind.DropCalls)
            Require(Rate is > 0 and <= 1, nameof(Rate), $"{Rate} is not a fraction of calls between 0 (exclusive) and 1");
        if (Kind is FaultKind.NanGradients)
        {
            Require(!string.IsNullOrWhiteSpace(JobId), nameof(JobId), "non-finite gradients need the job whose rank sends them");
            Require(Steps is > 0 and <= MaxSteps, nameof(Steps), $"{Steps} is not a number of steps between 1 and {MaxSteps}");
        }
    }
}

/// <summary>
/// Marks a failure-injection entry point (a grain interface or one method of it). Silos refuse every call to one
/// (<see cref="ChaosDisabledException"/>) unless they run with --allow-chaos, in one incoming call filter, so that
/// no entry point can be added without the check.
/// </summary>
[AttributeUsage(AttributeTargets.Interface | AttributeTargets.Method)]
public sealed class ChaosOperationAttribute : Attribute;

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
[Alias("chaos"), ChaosOperation]
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
[Alias("silo-chaos"), ChaosOperation]
public interface ISiloChaosGrain : IGrainWithStringKey
{
    [Alias("crash")] Task<int> Crash();
}

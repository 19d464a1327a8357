namespace Orchestrator.Contracts;

/// <summary>
/// One GPU node (key: node id): capacity, health, last heartbeat, and its desired assignments. The worker
/// heartbeats every second and reconciles to the reply, so a lost message only delays, never diverges.
/// </summary>
[Alias("node")]
public interface INodeGrain : IGrainWithStringKey
{
    /// <summary>The worker's heartbeat; the reply is its node's complete desired state. Sent every second, never resent:
    /// one sent to a gateway that just died gives up after 2 s, within the node's lease, so the next one goes through a
    /// live gateway.</summary>
    [Alias("heartbeat"), NotRetried, ResponseTimeout("00:00:02")] Task<NodeDirective> Heartbeat(NodeReport report);

    [Alias("info")] Task<NodeInfo> GetInfo();

    /// <summary>Adds an array's assignments (one device, one array id) if the device is free and the node healthy.</summary>
    [Alias("assign")] Task<bool> Assign(IReadOnlyList<Assignment> members);

    /// <summary>Removes the job's assignment if it still has this assignment epoch (or any when null).</summary>
    [Alias("unassign")] Task Unassign(string jobId, long? assignmentEpoch);

    /// <summary>Removes a data-parallel rank its peers found dead. If the node then turns out lost (or its worker
    /// restarted) without a heartbeat in between, the incident names the rank's job too.</summary>
    [Alias("rank-lost")] Task RankLost(string jobId, long assignmentEpoch);

    /// <summary>Chaos testing: the fault goes to the worker with its next heartbeat reply.</summary>
    [Alias("inject-fault"), ChaosOperation] Task InjectFault(NodeFault fault);

    /// <summary>Declares the node dead if it missed heartbeats for <paramref name="timeout"/>; returns what it ran.</summary>
    [Alias("liveness")] Task<IReadOnlyList<Assignment>> CheckLiveness(TimeSpan timeout);
}

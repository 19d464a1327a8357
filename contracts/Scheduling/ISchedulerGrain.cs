using Orleans.Concurrency;

namespace Orchestrator.Contracts;

/// <summary>
/// The cluster's scheduler (one, key <see cref="SchedulerKeys.Cluster"/>): the queue and placement, through the
/// pure policy in Orchestrator.Core.Scheduling. Notifications from jobs and nodes are one-way, so no grain ever
/// waits on the scheduler while the scheduler waits on it.
/// </summary>
[Alias("scheduler")]
public interface ISchedulerGrain : IGrainWithStringKey
{
    [OneWay, Alias("enqueue")] Task Enqueue(QueuedJob job);

    /// <summary>Queues several jobs before one placement pass, so compatible ones can share a fused array.</summary>
    [Alias("enqueue-many")] Task EnqueueMany(IReadOnlyList<QueuedJob> jobs);
    [OneWay, Alias("withdraw")] Task Withdraw(string jobId);
    [OneWay, Alias("register-node")] Task RegisterNode(string nodeId);

    /// <summary>Capacity was freed: run a placement pass now rather than at the next tick.</summary>
    [OneWay, Alias("kick")] Task Kick();

    /// <summary>Periodic pass: liveness of nodes, reconciliation with the job index, placement.</summary>
    [Alias("tick")] Task Tick();

    [Alias("info")] Task<SchedulerInfo> GetInfo();

    /// <summary>What the healthy nodes offer at most, as of the last pass (unknown before any node reported), for
    /// admission at submission.</summary>
    [Alias("shape")] Task<ClusterSize> GetShape();
}

public static class SchedulerKeys
{
    public const string Cluster = "cluster";
}

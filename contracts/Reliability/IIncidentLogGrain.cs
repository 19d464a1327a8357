using Orchestrator.Core.Reliability;

namespace Orchestrator.Contracts;

/// <summary>What the cluster noticed.</summary>
public enum IncidentKind { NodeLost, WorkerRestarted, SiloCrashed, StateStoreUnavailable, Preempted, JobFailed, StateStoreLost }

/// <summary>
/// One failure the cluster noticed: when, what (<see cref="Kind"/>), its category in the study's taxonomy, the node,
/// silo and jobs it hit, and the detection time where it is known. <see cref="Message"/> is rendered from the fields.
/// </summary>
[GenerateSerializer, Immutable, Alias("incident")]
public sealed record Incident
{
    [Id(0)] public DateTime At { get; init; }
    [Id(1)] public IncidentKind Kind { get; init; }
    [Id(2)] public FailureCategory Category { get; init; }
    [Id(3)] public string? NodeId { get; init; }
    [Id(4)] public IReadOnlyList<string> Jobs { get; init; } = [];
    [Id(5)] public string? Silo { get; init; }
    [Id(6)] public double? DetectionSeconds { get; init; }
    /// <summary>Assignments the node held when it was lost or its worker restarted.</summary>
    [Id(7)] public int? Assignments { get; init; }
    /// <summary>Data-parallel jobs whose ranks on the node their peers had removed before the node's incident.</summary>
    [Id(8)] public IReadOnlyList<string>? RemovedByPeers { get; init; }
    [Id(9)] public double? TimeoutSeconds { get; init; }
    /// <summary>The step a job was preempted at.</summary>
    [Id(10)] public long? Step { get; init; }
    /// <summary>A failed job's cause.</summary>
    [Id(11)] public FailureCause? Cause { get; init; }
    /// <summary>Words from elsewhere (a failure's detail, the store's error), shown as they are.</summary>
    [Id(12)] public string? Detail { get; init; }

    /// <summary>Longest text an incident keeps from elsewhere (a failure's detail, a store's error).</summary>
    public const int MaxDetailChars = 1000;
    /// <summary>Most jobs an incident names (a node's loss can hit many; the count says how many more).</summary>
    public const int MaxJobs = 100;

    /// <summary>The incident with its text and lists cut to what the log keeps, so ten thousand of them stay small.</summary>
    public Incident Bounded() => this with
    {
        Detail = Cut(Detail, MaxDetailChars),
        NodeId = Cut(NodeId, 256),
        Silo = Cut(Silo, 256),
        Jobs = Jobs.Count > MaxJobs ? [.. Jobs.Take(MaxJobs), $"… and {Jobs.Count - MaxJobs} more"] : Jobs,
        RemovedByPeers = RemovedByPeers is { Count: > MaxJobs } removed ? [.. removed.Take(MaxJobs), $"… and {removed.Count - MaxJobs} more"] : RemovedByPeers,
    };

    static string? Cut(string? text, int max) => text is { Length: > 0 } t && t.Length > max ? t[..max] + "…" : text;

    /// <summary>The incident in words, rendered from its fields.</summary>
    public string Message => Kind switch
    {
        IncidentKind.NodeLost => $"node {NodeId} sent no heartbeat for {TimeoutSeconds:0.#} s: declared dead, {Assignments} assignment(s) rescheduled{RanksRemoved}",
        IncidentKind.WorkerRestarted => $"the worker of node {NodeId} restarted (new process) with {Assignments} assignment(s){RanksRemoved}; they start again from their checkpoints",
        IncidentKind.SiloCrashed => $"silo {Silo} was declared dead while active; its grains reactivate on the survivors",
        IncidentKind.StateStoreUnavailable => $"the state store did not answer {Detail}",
        IncidentKind.StateStoreLost => $"the state store lost its data (the cluster's generation marker {Detail} is gone: flushed, or restarted without persistence); " +
                                       "the jobs, checkpoint references, incidents and membership it held are gone with it: restore the store from its persistence and restart the cluster",
        IncidentKind.Preempted => $"preempted at step {Step}",
        IncidentKind.JobFailed => $"job failed: {Detail}",
        _ => Kind.ToString(),
    };

    string RanksRemoved =>
        RemovedByPeers is { Count: > 0 } jobs ? $", and data-parallel ranks of {string.Join(", ", jobs)} already removed by their peers" : "";

    static Incident Of(IncidentKind kind, FailureCategory category) => new() { At = DateTime.UtcNow, Kind = kind, Category = category };

    public static Incident NodeLost(string node, TimeSpan timeout, int assignments, IReadOnlyList<string> jobs, IReadOnlyList<string> removedByPeers, TimeSpan detection) =>
        Of(IncidentKind.NodeLost, FailureCategory.NodeLost) with
        {
            NodeId = node, TimeoutSeconds = timeout.TotalSeconds, Assignments = assignments, Jobs = jobs, RemovedByPeers = removedByPeers, DetectionSeconds = detection.TotalSeconds,
        };

    public static Incident WorkerRestarted(string node, int assignments, IReadOnlyList<string> jobs, IReadOnlyList<string> removedByPeers, TimeSpan detection) =>
        Of(IncidentKind.WorkerRestarted, FailureCategory.WorkerCrash) with
        {
            NodeId = node, Assignments = assignments, Jobs = jobs, RemovedByPeers = removedByPeers, DetectionSeconds = detection.TotalSeconds,
        };

    public static Incident SiloCrashed(string silo) => Of(IncidentKind.SiloCrashed, FailureCategory.SiloCrash) with { Silo = silo };

    /// <param name="call">The grain call the store did not answer, and its error's first sentence.</param>
    public static Incident StateStoreLost(string silo, string generation) => Of(IncidentKind.StateStoreLost, FailureCategory.StateStoreOutage) with { Silo = silo, Detail = generation };

    public static Incident StateStoreUnavailable(string? silo, string call) => Of(IncidentKind.StateStoreUnavailable, FailureCategory.StateStoreOutage) with { Silo = silo, Detail = call };

    public static Incident Preempted(string node, string job, long step) => Of(IncidentKind.Preempted, FailureCategory.Preemption) with { NodeId = node, Jobs = [job], Step = step };

    public static Incident JobFailed(string node, string job, JobFailure failure) =>
        Of(IncidentKind.JobFailed, failure.Category) with { NodeId = node, Jobs = [job], Cause = failure.Cause, Step = failure.Step, Detail = failure.Message };
}

/// <summary>The cluster's incident log (key: "cluster"), persisted, newest last; the source of its reliability metrics.</summary>
[Alias("incident-log")]
public interface IIncidentLogGrain : IGrainWithStringKey
{
    /// <summary>Fire and forget, for callers that must not wait on the log. Lost if the log's silo dies meanwhile.</summary>
    [Alias("record"), Orleans.Concurrency.OneWay] Task Record(Incident incident);

    /// <summary>Returns once the incident is in the log (persisted, or kept in memory while the store is down), so a
    /// caller that must not lose it can retry a failed call.</summary>
    [Alias("append")] Task Append(Incident incident);

    /// <summary>The latest <paramref name="max"/> incidents, oldest first.</summary>
    [Alias("list")] Task<IReadOnlyList<Incident>> List(int max);
}

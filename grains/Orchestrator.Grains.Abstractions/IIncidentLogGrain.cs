namespace Orchestrator.Grains;

/// <summary>
/// One failure the cluster noticed: when, its category (a <c>Orchestrator.Core.Reliability.FailureCategory</c> name),
/// what happened, and the node, job or silo it hit; the detection time where it is known.
/// </summary>
[GenerateSerializer, Immutable, Alias("incident")]
public sealed record Incident(DateTime At, string Category, string What, string? NodeId = null, string? JobId = null, string? Silo = null,
    double? DetectionSeconds = null);

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

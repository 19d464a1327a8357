namespace Orchestrator.Grains;

[GenerateSerializer, Alias("incident-log-state")]
public sealed class IncidentLogState
{
    [Id(0)] public List<Incident> Incidents { get; set; } = [];
}

public sealed class IncidentLogGrain(
    [PersistentState("incidents", StorageNames.State)] IPersistentState<IncidentLogState> store,
    Microsoft.Extensions.Logging.ILogger<IncidentLogGrain> logger) : Grain, IIncidentLogGrain
{
    /// <summary>Incidents kept; older ones are dropped.</summary>
    public const int MaxIncidents = 10_000;

    public Task Record(Incident incident) => Append(incident);

    public async Task Append(Incident incident)
    {
        var log = store.State.Incidents;
        log.Add(incident);
        if (log.Count > MaxIncidents) log.RemoveRange(0, log.Count - MaxIncidents);
        // While the store is down the incident stays in memory and is written with the next one.
        try { await store.WriteStateAsync(); }
        catch (Exception e) when (e is not Orleans.Storage.InconsistentStateException)
        {
            logger.IncidentNotPersisted(e.GetBaseException().Message);
        }
    }

    public Task<IReadOnlyList<Incident>> List(int max) =>
        Task.FromResult<IReadOnlyList<Incident>>(store.State.Incidents.Skip(Math.Max(0, store.State.Incidents.Count - max)).ToList());

    public static IIncidentLogGrain Of(IGrainFactory grains) => grains.GetGrain<IIncidentLogGrain>(SchedulerKeys.Cluster);
}

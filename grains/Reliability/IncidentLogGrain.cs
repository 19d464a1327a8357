namespace Orchestrator.Grains;

[GenerateSerializer, Alias("incident-log-state")]
public sealed class IncidentLogState
{
    [Id(0)] public List<Incident> Incidents { get; set; } = [];
}

public sealed class IncidentLogGrain(
    [PersistentState("incidents", StorageNames.State)] IPersistentState<IncidentLogState> store,
    ILogger<IncidentLogGrain> logger) : Grain, IIncidentLogGrain
{
    /// <summary>Incidents kept; older ones are dropped.</summary>
    public const int MaxIncidents = 10_000;

    static readonly TimeSpan PersistAgainEvery = TimeSpan.FromMilliseconds(500);
    IGrainTimer? _persistAgain;

    public Task Record(Incident incident) => Append(incident);

    public async Task Append(Incident incident)
    {
        ArgumentNullException.ThrowIfNull(incident);
        var log = store.State.Incidents;
        log.Add(incident.Bounded());
        if (log.Count > MaxIncidents) log.RemoveRange(0, log.Count - MaxIncidents);
        await Persist(CancellationToken.None);
    }

    /// <summary>While the store is down the log stays in memory and is written again every half second until the store
    /// answers (not only with the next incident: a crash of this silo meanwhile would lose what only memory holds).</summary>
    async Task Persist(CancellationToken ct)
    {
        try
        {
            await store.WriteStateAsync(ct);
            _persistAgain?.Dispose();
            _persistAgain = null;
        }
        catch (Exception e) when (e is not Orleans.Storage.InconsistentStateException)
        {
            logger.IncidentNotPersisted(e.GetBaseException().Message);
            _persistAgain ??= this.RegisterGrainTimer(Persist, new GrainTimerCreationOptions(PersistAgainEvery, PersistAgainEvery) { KeepAlive = true });
        }
    }

    /// <summary>
    /// Appends an incident with a confirmed call, sent again for up to half a minute, without holding up the caller: a
    /// one-way record is lost when the log's activation dies meanwhile (its silo crashed, or it is moving).
    /// </summary>
    public static void Report(IGrainFactory grains, Incident incident, ILogger log) => _ = AppendConfirmed(grains, incident, log, CancellationToken.None);

    public static async Task AppendConfirmed(IGrainFactory grains, Incident incident, ILogger log, CancellationToken ct)
    {
        try { await Resilience.Retry(TimeSpan.FromSeconds(30)).ExecuteAsync(async _ => await Of(grains).Append(incident), ct); }
        catch (Exception e) when (e is not OperationCanceledException) { log.IncidentNotRecorded(incident.Kind, e.GetBaseException().Message); }
    }

    public Task<IReadOnlyList<Incident>> List(int max) =>
        Task.FromResult<IReadOnlyList<Incident>>(store.State.Incidents.Skip(Math.Max(0, store.State.Incidents.Count - max)).ToList());

    public static IIncidentLogGrain Of(IGrainFactory grains) => grains.GetGrain<IIncidentLogGrain>(SchedulerKeys.Cluster);
}

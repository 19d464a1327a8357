namespace Orchestrator.Grains;

/// <summary>
/// Turns a storage provider's failure inside any grain call into <see cref="StateStoreUnavailableException"/>, which
/// callers retry. A version conflict (a write that timed out during a store outage but landed when the store came
/// back) also deactivates the grain, so that the retried call reaches an activation that read the stored state.
/// </summary>
public sealed class StoreFailureFilter(IGrainFactory grains) : IIncomingGrainCallFilter
{
    /// <summary>One state-store incident per silo per this period, however many calls failed.</summary>
    static readonly TimeSpan IncidentEvery = TimeSpan.FromSeconds(30);
    long _lastIncidentTicks;

    public async Task Invoke(IIncomingGrainCallContext context)
    {
        try
        {
            await context.Invoke();
        }
        catch (Orleans.Storage.InconsistentStateException e)
        {
            context.TargetContext.Deactivate(new DeactivationReason(DeactivationReasonCode.ApplicationRequested, "its state changed in the store under it"));
            throw new StateStoreUnavailableException($"{context.InterfaceName}.{context.MethodName}: the stored state changed under this activation ({e.Message}); it reloads, retry");
        }
        catch (Exception e) when (Resilience.FromTheStore(e))
        {
            RecordIncident(context, e);
            throw new StateStoreUnavailableException($"the state store did not answer {context.InterfaceName}.{context.MethodName}: {FirstSentence(e.GetBaseException().Message)}; retry when it is back");
        }
    }

    void RecordIncident(IIncomingGrainCallContext context, Exception e)
    {
        var now = DateTime.UtcNow.Ticks;
        var last = Interlocked.Read(ref _lastIncidentTicks);
        if (now - last < IncidentEvery.Ticks || Interlocked.CompareExchange(ref _lastIncidentTicks, now, last) != last) return;
        // One-way; while the store is down the log keeps it in memory and writes it with the next one.
        _ = grains.GetGrain<IIncidentLogGrain>(SchedulerKeys.Cluster).Record(Incident.StateStoreUnavailable(
            context.TargetContext.Address.SiloAddress?.ToParsableString(), $"{context.InterfaceName}.{context.MethodName}: {FirstSentence(e.GetBaseException().Message)}"));
    }

    /// <summary>Redis client messages carry a page of diagnostics after the first sentence.</summary>
    static string FirstSentence(string message) => message.Split(" (", 2)[0];
}

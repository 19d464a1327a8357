using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Orchestrator.Grains;

/// <summary>
/// Records a silo that was declared dead while it was active (a crash, not a shutdown) in the incident log. Every silo
/// watches membership; the lowest-addressed active one records, so each death is recorded once.
/// </summary>
public sealed class SiloFailureRecorder(IClusterMembershipService membership, ILocalSiloDetails local, IGrainFactory grains, ILogger<SiloFailureRecorder> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        var previous = membership.CurrentSnapshot;
        try
        {
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(ct))
            {
                var crashed = snapshot.CreateUpdate(previous).Changes
                    .Where(m => m.Status == SiloStatus.Dead && previous.GetSiloStatus(m.SiloAddress) == SiloStatus.Active).ToList();
                previous = snapshot;
                var recorder = snapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress)
                    .OrderBy(a => a.ToParsableString(), StringComparer.Ordinal).FirstOrDefault();
                if (crashed.Count == 0 || !local.SiloAddress.Equals(recorder)) continue;
                foreach (var silo in crashed)
                {
                    try
                    {
                        // Confirmed and retried: the log's own activation may have been on the silo that died.
                        var incident = new Incident(DateTime.UtcNow, "SiloCrash",
                            $"silo {silo.SiloAddress} was declared dead while active; its grains reactivate on the survivors", Silo: silo.SiloAddress.ToParsableString());
                        await Resilience.Retry(TimeSpan.FromSeconds(30)).ExecuteAsync(async _ => await grains.GetGrain<IIncidentLogGrain>(SchedulerKeys.Cluster).Append(incident), ct);
                    }
                    catch (Exception e) { log.LogWarning("Could not record the death of silo {Silo}: {Error}", silo.SiloAddress, e.Message); }
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
    }
}

using Microsoft.Extensions.Hosting;

namespace Orchestrator.Grains;

/// <summary>
/// Reacts to silos leaving and joining. Every silo watches membership; the lowest-addressed silo active before and after a
/// change acts, so each change is handled once: a silo declared dead while it was active (a crash, not a shutdown) is recorded in the
/// incident log, and when a silo joins, coding groups that had to put two shards on one silo spread out again
/// (<see cref="IShardProtectionGrain"/>).
/// </summary>
public sealed class MembershipWatcher(IClusterMembershipService membership, IClusterManifestProvider manifest, ILocalSiloDetails local,
    IGrainFactory grains, ILogger<MembershipWatcher> log) : BackgroundService
{
    /// <summary>How long a joined silo may take to publish its grain types (until then shards cannot be placed on it).</summary>
    static readonly TimeSpan ManifestLimit = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        var previous = membership.CurrentSnapshot;
        try
        {
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(ct))
            {
                var changes = snapshot.CreateUpdate(previous).Changes;
                var crashed = changes.Where(m => m.Status == SiloStatus.Dead && previous.GetSiloStatus(m.SiloAddress) == SiloStatus.Active).ToList();
                var joined = changes.Where(m => m.Status == SiloStatus.Active && previous.GetSiloStatus(m.SiloAddress) != SiloStatus.Active).ToList();
                // The actor is chosen among silos active before and after: a silo that just joined may not have seen
                // its own join as a change, and one that just died cannot act.
                var actor = snapshot.Members.Values.Where(m => m.Status == SiloStatus.Active && previous.GetSiloStatus(m.SiloAddress) == SiloStatus.Active)
                    .Select(m => m.SiloAddress).OrderBy(a => a.ToParsableString(), StringComparer.Ordinal).FirstOrDefault();
                previous = snapshot;
                if (!local.SiloAddress.Equals(actor)) continue;
                // Confirmed and retried: the log's own activation may have been on the silo that died.
                foreach (var silo in crashed) await IncidentLogGrain.AppendConfirmed(grains, Incident.SiloCrashed(silo.SiloAddress.ToParsableString()), log, ct);
                if (joined.Count > 0) await RestoreProtection(joined.Select(m => m.SiloAddress).ToList(), ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
    }

    async Task RestoreProtection(IReadOnlyList<SiloAddress> joined, CancellationToken ct)
    {
        try
        {
            var deadline = DateTime.UtcNow + ManifestLimit;
            while (!joined.All(manifest.Current.Silos.ContainsKey) && DateTime.UtcNow < deadline) await Task.Delay(200, ct);
            var moved = await Resilience.Retry(TimeSpan.FromSeconds(30)).ExecuteAsync(async _ => await grains.GetGrain<IShardProtectionGrain>(SchedulerKeys.Cluster).Restore(), ct);
            if (moved.Count > 0) log.ProtectionRestored(string.Join(", ", joined), moved.Count);
        }
        catch (Exception e) when (e is not OperationCanceledException) { log.ProtectionNotRestored(string.Join(", ", joined), e.Message); }
    }
}

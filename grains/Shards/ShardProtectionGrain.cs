using Orchestrator.Core.Coding;

namespace Orchestrator.Grains;

[GenerateSerializer, Alias("shard-protection-state")]
public sealed class ShardProtectionState
{
    [Id(0)] public HashSet<string> ReducedGroups { get; set; } = [];
}

/// <summary>
/// Restores coding groups to one member per silo once silos join (see <see cref="IShardProtectionGrain"/>): a
/// member to move is relocated, and its next activation, placed by its group on the new silo, rebuilds it from its
/// siblings exactly as after a loss, while training goes on.
/// </summary>
public sealed class ShardProtectionGrain(
    [PersistentState("shard-protection", StorageNames.State)] IPersistentState<ShardProtectionState> store,
    IClusterMembershipService membership,
    IClusterManifestProvider manifest,
    ILogger<ShardProtectionGrain> log) : Grain, IShardProtectionGrain
{
    /// <summary>How long a relocated shard may take to come up on its new silo before the move is reported as not done.</summary>
    static readonly TimeSpan MoveLimit = TimeSpan.FromSeconds(10);

    public async Task Reduced(string group)
    {
        if (store.State.ReducedGroups.Add(group)) await store.WriteStateAsync();
    }

    public async Task<IReadOnlyList<string>> Restore()
    {
        if (store.State.ReducedGroups.Count == 0) return [];
        // Silos that are active and whose grain types are known: the placement director chooses among these.
        var known = manifest.Current.Silos;
        var live = membership.CurrentSnapshot.Members.Values
            .Where(m => m.Status == SiloStatus.Active && known.ContainsKey(m.SiloAddress)).Select(m => m.SiloAddress).ToArray();
        var liveNames = live.Select(s => s.ToParsableString()).ToHashSet();
        var done = new List<string>();
        foreach (var key in store.State.ReducedGroups.ToList())
        {
            var group = GrainFactory.GetGrain<ICodingGroupGrain>(key);
            foreach (var move in await group.Spread(live))
                if (await Move(key, group, move) is { } what) done.Add(what);
            var placements = (await group.Placements()).ToDictionary(kv => kv.Key, kv => kv.Value.ToParsableString());
            if (GroupSpread.IsSpread(placements, liveNames)) store.State.ReducedGroups.Remove(key);
        }
        await store.WriteStateAsync();
        return done;
    }

    async Task<string?> Move(string key, ICodingGroupGrain group, MemberMove move)
    {
        var shard = GrainFactory.GetGrain<IShardGrain>(move.Shard);
        // Asked again until it answers from its new silo: a migration is skipped while the shard's silo does not
        // know the new one yet.
        var deadline = DateTime.UtcNow + MoveLimit;
        var at = move.From.ToParsableString();
        while (at != move.To.ToParsableString() && DateTime.UtcNow < deadline)
        {
            try
            {
                if (!await shard.Relocate())
                {
                    await group.Undo(move.Member, move.From);
                    return null;
                }
                await Task.Delay(250);
                at = (await shard.Status()).Silo;
            }
            catch (Exception e) when (Resilience.IsTransient(e)) { await Task.Delay(250); }
        }
        var cut = key.LastIndexOf('/');
        if (at != move.To.ToParsableString())
        {
            log.MemberNotMoved(key, move.Member, move.To.ToString(), MoveLimit.TotalSeconds, at);
            return null;
        }
        var moved = JobEvent.ShardMoved($"{key[(cut + 1)..]}/{move.Member}", move.From.ToParsableString(), move.To.ToParsableString());
        log.MemberMoved(key, moved.Message);
        await GrainFactory.GetGrain<IJobGrain>(key[..cut]).Note(moved);
        return moved.Message;
    }
}

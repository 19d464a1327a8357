using Orchestrator.Core.Coding;

namespace Orchestrator.Grains;

[GenerateSerializer, Alias("coding-group-state")]
public sealed class CodingGroupState
{
    [Id(0)] public Dictionary<int, string> Silos { get; set; } = [];
    /// <summary>Each member's grain id (data or parity shard), to relocate it.</summary>
    [Id(1)] public Dictionary<int, GrainId> Shards { get; set; } = [];
}

public sealed class CodingGroupGrain(
    [PersistentState("coding-group", StorageNames.State)] IPersistentState<CodingGroupState> store,
    ILogger<CodingGroupGrain> log) : Grain, ICodingGroupGrain
{
    /// <summary>When members were moved (in memory: after a reactivation of the group, placement is as usual).</summary>
    readonly Dictionary<int, DateTime> _movedAt = [];

    /// <summary>How long a moved member waits for its new silo to be known where it is placed.</summary>
    static readonly TimeSpan MoveLimit = TimeSpan.FromSeconds(30);

    public async Task<SiloAddress> Place(int member, GrainId shard, SiloAddress[] candidates)
    {
        if (candidates.Length == 0) throw new InvalidOperationException("no silo can host the shard");
        var known = store.State.Shards.TryGetValue(member, out var id) && id == shard;
        store.State.Shards[member] = shard;
        var live = candidates.ToDictionary(s => s.ToParsableString());
        if (store.State.Silos.TryGetValue(member, out var was) && live.TryGetValue(was, out var same))
        {
            if (!known) await store.WriteStateAsync();
            return same;
        }
        // Moved to a silo that joined, which the placing silo does not know yet (its grain types travel with the
        // cluster manifest): the call fails and is retried, rather than placing the member back beside a sibling.
        if (was is not null && _movedAt.TryGetValue(member, out var movedAt) && DateTime.UtcNow - movedAt < MoveLimit)
            throw new TimeoutException($"coding group {this.GetPrimaryKeyString()}: member {member} moves to silo {was}, which the placing silo does not know yet; retry");
        var taken = store.State.Silos.Where(kv => kv.Key != member && live.ContainsKey(kv.Value)).Select(kv => kv.Value).ToHashSet();
        // Spread groups over silos: start at a position derived from the group's key.
        var start = (int)((uint)StableHash(this.GetPrimaryKeyString()) % (uint)candidates.Length);
        var order = Enumerable.Range(0, candidates.Length).Select(i => candidates[(start + member + i) % candidates.Length]).ToList();
        var choice = order.FirstOrDefault(s => !taken.Contains(s.ToParsableString()));
        if (choice is null)
        {
            choice = order[0];
            log.MemberSharesSilo(this.GetPrimaryKeyString(), candidates.Length, member, choice.ToString());
            await GrainFactory.GetGrain<IShardProtectionGrain>(SchedulerKeys.Cluster).Reduced(this.GetPrimaryKeyString());
        }
        store.State.Silos[member] = choice.ToParsableString();
        await store.WriteStateAsync();
        return choice;
    }

    public Task<Dictionary<int, SiloAddress>> Placements() =>
        Task.FromResult(store.State.Silos.ToDictionary(kv => kv.Key, kv => SiloAddress.FromParsableString(kv.Value)));

    public async Task<IReadOnlyList<MemberMove>> Spread(SiloAddress[] live)
    {
        var plan = GroupSpread.Plan(store.State.Silos, live.Select(s => s.ToParsableString()).ToHashSet())
            .Where(m => store.State.Shards.ContainsKey(m.Member)).ToList();
        if (plan.Count == 0) return [];
        foreach (var m in plan)
        {
            store.State.Silos[m.Member] = m.To;
            _movedAt[m.Member] = DateTime.UtcNow;
        }
        await store.WriteStateAsync();
        return plan.Select(m => new MemberMove(m.Member, store.State.Shards[m.Member], SiloAddress.FromParsableString(m.From), SiloAddress.FromParsableString(m.To))).ToList();
    }

    public async Task Undo(int member, SiloAddress silo)
    {
        _movedAt.Remove(member);
        store.State.Silos[member] = silo.ToParsableString();
        await store.WriteStateAsync();
    }

    static int StableHash(string s)
    {
        var h = 17;
        foreach (var c in s) h = h * 31 + c;
        return h;
    }
}

using System.Diagnostics;
using System.Runtime.InteropServices;
using Orchestrator.Core.Coding;
using Orchestrator.Core.Recommendation;

namespace Orchestrator.Grains;

/// <summary>Persisted once per shard: whether it was created. A shard that was created but has no rows in memory
/// was lost with its silo and must be rebuilt, never initialized again.</summary>
[GenerateSerializer, Alias("shard-marker")]
public sealed class ShardMarker
{
    [Id(0)] public bool Created { get; set; }
}

/// <summary>The checkpoint baseline's saved shards: the latest and the one before (a failure during a checkpoint
/// round can leave shards one checkpoint apart).</summary>
[GenerateSerializer, Alias("shard-checkpoints")]
public sealed class ShardCheckpoints
{
    [Id(0)] public List<SavedShard> Saved { get; set; } = [];
}

[GenerateSerializer, Immutable, Alias("saved-shard")]
public sealed record SavedShard(long Step, long Version, byte[] Bytes);

/// <summary>The arithmetic both kinds of shard grain share: identity, layout, initial contents, rebuild.</summary>
static class Shard
{
    public static (string Job, int Group, int Member) Parse(string key)
    {
        var parts = key.Split('/');
        return (string.Join('/', parts[..^2]), int.Parse(parts[^2]), int.Parse(parts[^1]));
    }

    public static EmbeddingLayout Layout(ShardConfig c) => new([checked((int)c.TotalRows)], c.Dim, c.Shards);

    public static byte[] InitialData(ShardConfig c, int group, int member) => LocalEmbeddingStore.InitialShard(Layout(c), c.Seed, group * c.K + member);

    public static int[] Ints(byte[] bytes) => MemoryMarshal.Cast<byte, int>(bytes).ToArray();
    public static byte[] Bytes(int[] ints) => MemoryMarshal.AsBytes(ints.AsSpan()).ToArray();

    public static IEmbeddingShardGrain Data(IGrainFactory f, ShardConfig c, int group, int member) =>
        f.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(c.JobId, group, member));

    public static IParityShardGrain Parity(IGrainFactory f, ShardConfig c, int group, int parity) =>
        f.GetGrain<IParityShardGrain>(ShardConfig.Key(c.JobId, group, c.K + parity));

    /// <summary>Rebuilds member <paramref name="member"/> of a group from read-only copies of its siblings.</summary>
    public static async Task<(SnapshotRecovery.Rebuilt Rebuilt, long BytesRead)> Rebuild(IGrainFactory f, ShardConfig c, int group, int member)
    {
        var data = await Task.WhenAll(Enumerable.Range(0, c.K).Select(i => i == member ? Task.FromResult<DataShardCopy?>(null) : CopyOrNull(Data(f, c, group, i).Copy(c))));
        var parity = await Task.WhenAll(Enumerable.Range(0, c.R).Select(j => c.K + j == member ? Task.FromResult<ParityShardCopy?>(null) : CopyOrNull(Parity(f, c, group, j).Copy(c))));
        var bytesRead = data.Sum(d => (long?)d?.Bytes.Length ?? 0) + parity.Sum(p => (long?)p?.Bytes.Length ?? 0);
        try
        {
            var rebuilt = SnapshotRecovery.Rebuild(new ErasureCode(c.K, c.R), Layout(c).RowBytes,
                data.Select(d => d is null ? null : new DataSnapshot(d.Bytes, d.Version, Delta(d.Pending))).ToList(),
                parity.Select(p => p is null ? null : new Core.Coding.ParitySnapshot(p.Bytes, p.Applied,
                    p.Last.Select(l => l is null ? ((RowDelta, long)?)null : (Delta(l)!, l.Before)).ToArray())).ToList());
            return (rebuilt, bytesRead);
        }
        catch (InvalidOperationException e)
        {
            // More members of the group are lost than its code tolerates.
            throw new EmbeddingShardLostException($"member {member} of coding group {c.JobId}/{group} cannot be rebuilt: {e.Message}");
        }
    }

    /// <summary>Tells the job (one-way; a shard of a test without a job grain tells nobody).</summary>
    public static Task Report(IGrainFactory f, ShardConfig c, JobEvent happened) => f.GetGrain<IJobGrain>(c.JobId).Note(happened);

    static async Task<T?> CopyOrNull<T>(Task<T> copy) where T : class
    {
        var c = await copy;
        return c switch { DataShardCopy { Available: false } or ParityShardCopy { Available: false } => null, _ => c };
    }

    static RowDelta? Delta(DeltaCopy? d) => d is null ? null : new RowDelta(d.Step, d.Rows, d.Delta);
    public static DeltaCopy Copy(RowDelta d, long before = 0) => new(d.Step, d.Rows, d.Delta, before);
}

/// <summary>
/// A data shard: its rows live only in this activation's memory. Created from the seed on first use; after its
/// silo dies, the next activation (on a silo without a sibling) rebuilds it from the group's survivors. Updates
/// follow the shard protocol: prepare, deltas to every parity, commit (docs/erasure-coding.md).
/// </summary>
[CodingGroupPlacement, CollectionAgeLimit(AlwaysActive = true), Orleans.GrainDirectory.GrainDirectory(GrainDirectoryName = SiloBuilderExtensions.ShardDirectory)]
public sealed class EmbeddingShardGrain(
    [PersistentState("shard", StorageNames.State)] IPersistentState<ShardMarker> marker,
    [PersistentState("shard-checkpoints", StorageNames.Checkpoints)] IPersistentState<ShardCheckpoints> checkpoints,
    ILogger<EmbeddingShardGrain> log) : Grain, IEmbeddingShardGrain
{
    DataShard? _shard;
    ShardStatus? _status;
    /// <summary>The newest writer (assignment epoch) seen; older ones are refused. In memory: a rebuilt shard starts
    /// at 0, and the next write raises it.</summary>
    long _writer;
    /// <summary>Checkpoint baseline: the step this shard came back from after a loss, until the job rolls back to it.</summary>
    long? _restoredFrom;
    ShardConfig? _config;
    string Silo => GrainContext.Address.SiloAddress!.ToParsableString();
    (string Job, int Group, int Member)? _key;
    (string Job, int Group, int Member) Key => _key ??= Shard.Parse(this.GetPrimaryKeyString());

    async Task<DataShard> Ready(ShardConfig c)
    {
        _config = c;
        if (_shard is not null) return _shard;
        var (_, group, member) = Key;
        if (!marker.State.Created)
        {
            _shard = new DataShard(member, Shard.Layout(c).RowBytes, Shard.InitialData(c, group, member));
            marker.State.Created = true;
            await marker.WriteStateAsync();
            _status = new ShardStatus(Silo, 0, false, 0, 0);
            return _shard;
        }
        if (c.CheckpointInterval > 0) return RestoreLatest(c, member);
        if (c.R == 0) throw new EmbeddingShardLostException($"shard {this.GetPrimaryKeyString()} was lost with its silo and the job has no parity to rebuild it from");
        var clock = Stopwatch.StartNew();
        var (rebuilt, bytesRead) = await Shard.Rebuild(GrainFactory, c, group, member);
        _shard = new DataShard(member, Shard.Layout(c).RowBytes, rebuilt.Data[member], rebuilt.Versions[member]);
        _status = new ShardStatus(Silo, _shard.Version, true, clock.Elapsed.TotalMilliseconds, bytesRead);
        log.ShardRebuilt(this.GetPrimaryKeyString(), Silo, _shard.Version, clock.Elapsed.TotalMilliseconds, bytesRead);
        await Shard.Report(GrainFactory, c, JobEvent.ShardRebuilt(this.GetPrimaryKeyString(), $"{group}/{member}", Silo, _shard.Version, clock.Elapsed, bytesRead));
        return _shard;
    }

    /// <summary>Checkpoint baseline: a lost shard comes back as its latest checkpoint (or its initial rows).</summary>
    DataShard RestoreLatest(ShardConfig c, int member)
    {
        var (_, group, _) = Key;
        var latest = checkpoints.State.Saved.MaxBy(s => s.Step);
        _shard = new DataShard(member, Shard.Layout(c).RowBytes, latest?.Bytes.ToArray() ?? Shard.InitialData(c, group, member), latest?.Version ?? 0);
        _restoredFrom = latest?.Step ?? 0;
        _status = new ShardStatus(Silo, _shard.Version, true, 0, latest?.Bytes.Length ?? 0);
        log.ShardRestored(this.GetPrimaryKeyString(), Silo, _restoredFrom ?? 0);
        return _shard;
    }

    /// <summary>Refuses work past a checkpoint the shard was restored from, until the job rolls back to it.</summary>
    void EnsureNotRolledBack(long step)
    {
        if (_restoredFrom is { } from && step > from + 1)
            throw new ShardRolledBackException(from, $"shard {this.GetPrimaryKeyString()} was lost and restored from its checkpoint at step {from}; roll the job back to it");
    }

    public async Task Checkpoint(ShardConfig c, long step)
    {
        var shard = await Ready(c);
        EnsureNotRolledBack(step);
        var saved = checkpoints.State.Saved;
        saved.RemoveAll(s => s.Step >= step);
        saved.Add(new SavedShard(step, shard.Version, shard.Bytes.ToArray()));
        while (saved.Count > 2) saved.RemoveAt(0);
        await checkpoints.WriteStateAsync();
    }

    public async Task Restore(ShardConfig c, long step)
    {
        var (_, group, member) = Key;
        await Ready(c);
        var saved = checkpoints.State.Saved.SingleOrDefault(s => s.Step == step);
        if (saved is null && step != 0) throw new InvalidOperationException($"shard {this.GetPrimaryKeyString()} has no checkpoint at step {step} (it has {string.Join(", ", checkpoints.State.Saved.Select(s => s.Step))})");
        _shard = new DataShard(member, Shard.Layout(c).RowBytes, saved?.Bytes.ToArray() ?? Shard.InitialData(c, group, member), saved?.Version ?? 0);
        _restoredFrom = null;
    }

    public async Task<byte[]> Lookup(ShardConfig c, long step, byte[] rows)
    {
        var shard = await Ready(c);
        EnsureNotRolledBack(step);
        var ids = Shard.Ints(rows);
        var result = new byte[ids.Length * c.Dim * sizeof(float)];
        for (int n = 0; n < ids.Length; n++)
            shard.Row(ids[n])[..(c.Dim * sizeof(float))].CopyTo(result.AsSpan(n * c.Dim * sizeof(float)));
        return result;
    }

    public async Task Fence(ShardConfig c, long writer)
    {
        await Ready(c);
        CheckWriter(writer);
    }

    void CheckWriter(long writer)
    {
        if (writer < _writer)
            throw new StaleWriterException($"shard {this.GetPrimaryKeyString()}: a write from assignment epoch {writer}, but epoch {_writer} has taken the job over; this worker must stop");
        _writer = writer;
    }

    public async Task Update(ShardConfig c, long step, byte[] rows, byte[] gradients, long writer)
    {
        var shard = await Ready(c);
        CheckWriter(writer);
        EnsureNotRolledBack(step);
        var ids = Shard.Ints(rows);
        var position = new Dictionary<int, int>(ids.Length);
        for (int n = 0; n < ids.Length; n++) position[ids[n]] = n;
        var grads = MemoryMarshal.Cast<byte, float>(gradients).ToArray();
        if (!Core.Collectives.Collective.AllFinite(grads))
            throw new ArgumentException($"shard {this.GetPrimaryKeyString()}: step {step} carries non-finite gradients; refused, nothing applied");
        var delta = shard.Prepare(step, ids, (row, bytes) => AdagradRows.Update(bytes.Span, grads.AsSpan(position[row] * c.Dim, c.Dim), c.Lr));
        if (delta is null) return; // a retry of a step this shard holds
        var (_, group, member) = Key;
        // A parity on a dead silo fails the update within the shard call timeout instead of Orleans' 10 s; the
        // worker's retry re-sends this pending delta, which reaches the parity's rebuilt activation.
        await Task.WhenAll(Enumerable.Range(0, c.R).Select(j => Shard.Parity(GrainFactory, c, group, j).ApplyDelta(c, member, step, rows, delta.Delta)));
        shard.Commit();
    }

    public async Task<DataShardCopy> Copy(ShardConfig c)
    {
        // A lost shard that has not been rebuilt yet is not a source (its own rebuild may be asking us).
        if (_shard is null && marker.State.Created) return new DataShardCopy(false, [], 0, null);
        var shard = await Ready(c);
        return new DataShardCopy(true, shard.Bytes.ToArray(), shard.Version, shard.Pending is { } p ? Shard.Copy(p.Delta) : null);
    }

    public Task<ShardStatus> Status() => Task.FromResult(_status ?? new ShardStatus(Silo, -1, false, 0, 0));

    public Task<bool> Relocate()
    {
        // Rows that no parity protects (the checkpoint baseline) would come back from a checkpoint: they stay.
        if (_shard is not null && _config is not { R: > 0 }) return Task.FromResult(false);
        // Placed by the director (its group), unlike a plain deactivation, which the next caller's cached address
        // would bring back to this silo. Nothing travels: the next activation rebuilds from the siblings.
        MigrateOnIdle();
        return Task.FromResult(true);
    }
}

/// <summary>A parity shard: created by encoding the group's initial data (from the seed, no messages); rebuilt from
/// its siblings after its silo dies. Applies each data shard's delta once per step.</summary>
[CodingGroupPlacement, CollectionAgeLimit(AlwaysActive = true), Orleans.GrainDirectory.GrainDirectory(GrainDirectoryName = SiloBuilderExtensions.ShardDirectory)]
public sealed class ParityShardGrain(
    [PersistentState("shard", StorageNames.State)] IPersistentState<ShardMarker> marker,
    ILogger<ParityShardGrain> log) : Grain, IParityShardGrain
{
    ParityShard? _parity;
    ShardStatus? _status;
    string Silo => GrainContext.Address.SiloAddress!.ToParsableString();
    (string Job, int Group, int Member)? _key;
    (string Job, int Group, int Member) Key => _key ??= Shard.Parse(this.GetPrimaryKeyString());

    async Task<ParityShard> Ready(ShardConfig c)
    {
        if (_parity is not null) return _parity;
        var (_, group, member) = Key;
        var code = new ErasureCode(c.K, c.R);
        var rowBytes = Shard.Layout(c).RowBytes;
        if (!marker.State.Created)
        {
            var initial = code.Encode(Enumerable.Range(0, c.K).Select(i => Shard.InitialData(c, group, i)).ToList());
            _parity = new ParityShard(member - c.K, code, rowBytes, initial[member - c.K], new long[c.K]);
            marker.State.Created = true;
            await marker.WriteStateAsync();
            _status = new ShardStatus(Silo, 0, false, 0, 0);
            return _parity;
        }
        var clock = Stopwatch.StartNew();
        var (rebuilt, bytesRead) = await Shard.Rebuild(GrainFactory, c, group, member);
        _parity = new ParityShard(member - c.K, code, rowBytes, rebuilt.Parity[member - c.K], rebuilt.Versions);
        _status = new ShardStatus(Silo, rebuilt.Versions.Max(), true, clock.Elapsed.TotalMilliseconds, bytesRead);
        log.ParityRebuilt(this.GetPrimaryKeyString(), Silo, clock.Elapsed.TotalMilliseconds, bytesRead);
        await Shard.Report(GrainFactory, c, JobEvent.ParityRebuilt(this.GetPrimaryKeyString(), $"{group}/{member - c.K}", Silo, clock.Elapsed, bytesRead));
        return _parity;
    }

    public async Task ApplyDelta(ShardConfig c, int member, long step, byte[] rows, byte[] delta) =>
        (await Ready(c)).Apply(member, new RowDelta(step, Shard.Ints(rows), delta));

    public async Task<ParityShardCopy> Copy(ShardConfig c)
    {
        if (_parity is null && marker.State.Created) return new ParityShardCopy(false, [], [], []);
        var p = await Ready(c);
        return new ParityShardCopy(true, p.Bytes.ToArray(), p.Applied.ToArray(), p.Last.Select(l => l is { } x ? Shard.Copy(x.Delta, x.Before) : null).ToArray());
    }

    public Task<ShardStatus> Status() => Task.FromResult(_status ?? new ShardStatus(Silo, -1, false, 0, 0));

    public Task<bool> Relocate()
    {
        MigrateOnIdle(); // to where its group places it; rebuilt there from the siblings
        return Task.FromResult(true);
    }
}

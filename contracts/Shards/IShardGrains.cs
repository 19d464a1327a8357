namespace Orchestrator.Contracts;

/// <summary>
/// What every shard of a recommendation job's embedding needs to know, carried by every call so that a shard
/// reactivated on another silo can rebuild itself: its coding group (k data + r parity shards; r = 0: none), the
/// layout (shards, embedding width, rows) and the rows' initialization and learning rate.
/// </summary>
/// <param name="CheckpointInterval">The checkpoint baseline (r = 0): shards are checkpointed every this many steps and
/// a lost shard rolls the whole job back to the last checkpoint; 0 for erasure coding or no protection.</param>
[GenerateSerializer, Immutable, Alias("shard-config")]
public sealed record ShardConfig(string JobId, int K, int R, int Shards, int Dim, long TotalRows, int Seed, float Lr, int CheckpointInterval = 0)
{
    public int Groups => Shards / K;

    /// <summary>Memory the tables take across the silos: weights and Adagrad state of every row, and the parity.</summary>
    public long MemoryBytes => TotalRows * Dim * 4L * 2 * (K + R) / K;

    /// <summary>
    /// A shard's lookup, update or delta takes milliseconds. One to a silo that just died would otherwise wait for
    /// Orleans' response timeout (10 s) before it is sent again; giving up after this long resends it, and it reaches
    /// the shard's new activation once the silo is declared dead. Resending is safe: lookups read, updates and deltas
    /// are idempotent by step.
    /// </summary>
    public const string CallTimeout = "00:00:02";
    public static string Key(string jobId, int group, int member) => $"{jobId}/{group}/{member}";
}

/// <summary>A delta in flight or last applied: rows (little-endian int32s), old ⊕ new of their bytes, and for a
/// parity's last delta the step applied before it.</summary>
[GenerateSerializer, Immutable, Alias("delta-copy")]
public sealed record DeltaCopy(long Step, int[] Rows, byte[] Delta, long Before = 0);

/// <summary>A read-only copy of a data shard for a sibling's rebuild; Available false if this shard is itself lost.</summary>
[GenerateSerializer, Immutable, Alias("data-shard-copy")]
public sealed record DataShardCopy(bool Available, byte[] Bytes, long Version, DeltaCopy? Pending);

/// <summary>A read-only copy of a parity shard: bytes, per data shard the step applied and the latest delta.</summary>
[GenerateSerializer, Immutable, Alias("parity-shard-copy")]
public sealed record ParityShardCopy(bool Available, byte[] Bytes, long[] Applied, DeltaCopy?[] Last);

/// <summary>How a shard came to be on its silo, for tests, the CLI and the job's events.</summary>
[GenerateSerializer, Immutable, Alias("shard-status")]
public sealed record ShardStatus(string Silo, long Version, bool Rebuilt, double RebuildMilliseconds, long BytesRead);

/// <summary>What every shard answers, data or parity (reached by its grain id, which names its kind).</summary>
[Alias("shard")]
public interface IShardGrain : IGrainWithStringKey
{
    [Alias("status"), Orleans.Concurrency.AlwaysInterleave] Task<ShardStatus> Status();

    /// <summary>
    /// Leaves this silo so that the shard's next activation goes where its coding group now places it, rebuilt there
    /// from its siblings as after a loss (bit-exact). False, and nothing changes, for a shard its group cannot rebuild
    /// (no parity: a checkpointed shard would roll its job back).
    /// </summary>
    [Alias("relocate")] Task<bool> Relocate();
}

/// <summary>
/// A data shard of a recommendation job's embedding (key: job/group/member, member &lt; k): rows of weights and
/// Adagrad state, kept in memory only. Row traffic is packed bytes: one call per shard per step.
/// </summary>
[Alias("embedding-shard")]
public interface IEmbeddingShardGrain : IShardGrain
{
    /// <summary>The weights (dim little-endian floats per row) of the shard's local rows (little-endian int32s), for
    /// training step <paramref name="step"/>.</summary>
    [Alias("lookup"), ResponseTimeout(ShardConfig.CallTimeout)] Task<byte[]> Lookup(ShardConfig config, long step, byte[] rows);

    /// <summary>Step <paramref name="step"/>'s Adagrad update of the given rows: prepare, deltas to every parity, commit.
    /// A step the shard already holds is acknowledged without being applied again (retries are safe). An update from
    /// a <paramref name="writer"/> (the assignment epoch of a single-worker job) older than one already seen is refused
    /// with <see cref="StaleWriterException"/>: a worker that thaws after its job moved on must not write.</summary>
    [Alias("update"), ResponseTimeout(ShardConfig.CallTimeout)] Task Update(ShardConfig config, long step, byte[] rows, byte[] gradients, long writer);

    /// <summary>Raises the shard's writer fence to <paramref name="writer"/> (a new assignment takes over the job).</summary>
    [Alias("fence")] Task Fence(ShardConfig config, long writer);

    /// <summary>For a sibling's rebuild: a copy of this shard, taken between two turns (it never waits on an update in flight).</summary>
    [Alias("copy"), Orleans.Concurrency.AlwaysInterleave] Task<DataShardCopy> Copy(ShardConfig config);

    /// <summary>Checkpoint baseline: saves the shard as of step <paramref name="step"/> (it keeps this and the previous one).</summary>
    [Alias("checkpoint")] Task Checkpoint(ShardConfig config, long step);

    /// <summary>Checkpoint baseline: goes back to its checkpoint of step <paramref name="step"/>.</summary>
    [Alias("restore")] Task Restore(ShardConfig config, long step);
}

/// <summary>
/// Checkpoint baseline: a shard came back from its last checkpoint after its silo died, so the job must roll back
/// every shard and its dense model to step <see cref="Step"/> and redo the steps since.
/// </summary>
[GenerateSerializer, Alias("shard-rolled-back")]
public sealed class ShardRolledBackException(long step, string message) : Exception(message)
{
    [Id(0)] public long Step { get; } = step;
}

/// <summary>An embedding shard was lost with its silo and cannot be rebuilt (no parity, or more of its coding group lost
/// than the code tolerates): the job has lost part of its model.</summary>
[GenerateSerializer, Alias("embedding-shard-lost")]
public sealed class EmbeddingShardLostException(string message) : Exception(message);

/// <summary>A write from an assignment older than the shard's writer fence: that worker's job has moved on.</summary>
[GenerateSerializer, Alias("stale-writer")]
public sealed class StaleWriterException(string message) : Exception(message);

/// <summary>A parity shard of a coding group (key: job/group/member, member ≥ k).</summary>
[Alias("parity-shard")]
public interface IParityShardGrain : IShardGrain
{
    /// <summary>Applies data shard <paramref name="member"/>'s delta of step <paramref name="step"/> (ignored if already applied).</summary>
    [Alias("apply"), ResponseTimeout(ShardConfig.CallTimeout)] Task ApplyDelta(ShardConfig config, int member, long step, byte[] rows, byte[] delta);

    /// <summary>For a sibling's rebuild: a copy of this parity, taken between two turns.</summary>
    [Alias("copy"), Orleans.Concurrency.AlwaysInterleave] Task<ParityShardCopy> Copy(ShardConfig config);
}

/// <summary>A member of a coding group to move: its grain, from and to which silo.</summary>
[GenerateSerializer, Immutable, Alias("member-move")]
public sealed record MemberMove(int Member, GrainId Shard, SiloAddress From, SiloAddress To);

/// <summary>
/// Where the shards of one coding group live (key: job/group), persisted: every shard of a group on a different
/// silo. Consulted by the placement director when a shard activates (first time, or after its silo died).
/// </summary>
[Alias("coding-group")]
public interface ICodingGroupGrain : IGrainWithStringKey
{
    /// <summary>Chooses the silo for <paramref name="member"/> (grain <paramref name="shard"/>) among
    /// <paramref name="candidates"/> (live silos): where it was if that silo lives, else a silo that holds no live
    /// sibling; if none does, a shared one, and the group is listed for <see cref="IShardProtectionGrain"/>.</summary>
    [Alias("place")] Task<SiloAddress> Place(int member, GrainId shard, SiloAddress[] candidates);

    /// <summary>Which silo each member was placed on.</summary>
    [Alias("placements")] Task<Dictionary<int, SiloAddress>> Placements();

    /// <summary>Records moves that give members sharing a silo one of <paramref name="live"/> that holds none of
    /// them (the caller then relocates those shards); empty when the group is spread or no such silo lives.</summary>
    [Alias("spread")] Task<IReadOnlyList<MemberMove>> Spread(SiloAddress[] live);

    /// <summary>A move its shard refused: the member stays on <paramref name="silo"/>.</summary>
    [Alias("undo")] Task Undo(int member, SiloAddress silo);
}

/// <summary>
/// The coding groups with two members on one silo (key: "cluster"), persisted. When a silo joins, members move
/// onto silos of their own again and the group has the protection its code promises.
/// </summary>
[Alias("shard-protection")]
public interface IShardProtectionGrain : IGrainWithStringKey
{
    /// <summary>A group placed a member on a silo a sibling holds (one-way: called while placing a shard).</summary>
    [Alias("reduced"), Orleans.Concurrency.OneWay] Task Reduced(string group);

    /// <summary>Moves members of the listed groups onto live silos that hold none of their siblings; returns what moved.</summary>
    [Alias("restore")] Task<IReadOnlyList<string>> Restore();
}

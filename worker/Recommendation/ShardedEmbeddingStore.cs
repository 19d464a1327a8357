using System.Runtime.InteropServices;
using Orchestrator.Core.Recommendation;

namespace Orchestrator.Worker.Recommendation;

/// <summary>
/// A DLRM's embedding rows in shard grains: per step one lookup and one update call per shard that the batch
/// touches, each carrying all of that shard's rows packed as bytes. A call that fails because a silo died is sent
/// again by the client's retry filter (within the shard call timeout, <see cref="ShardConfig.CallTimeout"/>): the
/// shard comes back rebuilt on another silo, and a resent update is never applied twice.
/// </summary>
/// <param name="writer">The assignment epoch of a single-worker job, fencing shards against a stale worker; 0 for
/// data-parallel ranks, which all write (their data plane is fenced by membership epochs instead).</param>
public sealed class ShardedEmbeddingStore(IGrainFactory grains, ShardConfig config, EmbeddingLayout layout, long writer = 0) : IEmbeddingStore
{
    public ShardConfig Config => config;

    IEmbeddingShardGrain Grain(int shard) => grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(config.JobId, shard / config.K, shard % config.K));

    public async ValueTask<float[]> Lookup(long step, IReadOnlyList<long> ids, CancellationToken ct = default)
    {
        var dim = layout.Dim;
        var result = new float[ids.Count * dim];
        await Task.WhenAll(ByShard(ids).Select(async shard =>
        {
            var rows = RowBytes(shard.Select(n => layout.LocalRow(ids[n])));
            var bytes = await Grain(shard.Key).Lookup(config, step, rows).WaitAsync(ct);
            var weights = MemoryMarshal.Cast<byte, float>(bytes);
            var i = 0;
            foreach (var n in shard) weights.Slice(i++ * dim, dim).CopyTo(result.AsSpan(n * dim, dim));
        }));
        return result;
    }

    public async ValueTask Update(long step, IReadOnlyList<long> ids, float[] gradients, CancellationToken ct = default)
    {
        var dim = layout.Dim;
        await Task.WhenAll(ByShard(ids).Select(async shard =>
        {
            var rows = RowBytes(shard.Select(n => layout.LocalRow(ids[n])));
            var grads = new float[shard.Count() * dim];
            var i = 0;
            foreach (var n in shard) gradients.AsSpan(n * dim, dim).CopyTo(grads.AsSpan(i++ * dim));
            var payload = MemoryMarshal.AsBytes(grads.AsSpan()).ToArray();
            await Grain(shard.Key).Update(config, step, rows, payload, writer).WaitAsync(ct);
        }));
    }

    /// <summary>Raises every shard's writer fence to this store's writer, before its first step.</summary>
    public Task Fence(CancellationToken ct = default) => AllShards(g => g.Fence(config, writer), ct);

    /// <summary>Checkpoint baseline: every shard saves itself as of <paramref name="step"/>.</summary>
    public Task Checkpoint(long step, CancellationToken ct = default) => AllShards(g => g.Checkpoint(config, step), ct);

    /// <summary>Checkpoint baseline: every shard goes back to its checkpoint of <paramref name="step"/>.</summary>
    public Task Restore(long step, CancellationToken ct = default) => AllShards(g => g.Restore(config, step), ct);

    Task AllShards(Func<IEmbeddingShardGrain, Task> call, CancellationToken ct) =>
        Task.WhenAll(Enumerable.Range(0, config.Shards).Select(s => call(Grain(s)))).WaitAsync(ct);

    IEnumerable<IGrouping<int, int>> ByShard(IReadOnlyList<long> ids) => Enumerable.Range(0, ids.Count).GroupBy(n => layout.ShardOf(ids[n]));

    static byte[] RowBytes(IEnumerable<int> rows) => MemoryMarshal.AsBytes(rows.ToArray().AsSpan()).ToArray();
}

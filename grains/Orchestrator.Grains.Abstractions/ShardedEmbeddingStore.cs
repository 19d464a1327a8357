using System.Runtime.InteropServices;
using Orchestrator.Core.Recommendation;
using Polly;

namespace Orchestrator.Grains;

/// <summary>
/// A DLRM's embedding rows in shard grains: per step one lookup and one update call per shard that the batch
/// touches, each carrying all of that shard's rows packed as bytes. A call that fails because a silo died is
/// retried: the shard comes back rebuilt on another silo, and a retried update is never applied twice.
/// </summary>
/// <param name="writer">The assignment epoch of a single-worker job, fencing shards against a stale worker; 0 for
/// data-parallel ranks, which all write (their data plane is fenced by membership epochs instead).</param>
public sealed class ShardedEmbeddingStore(IGrainFactory grains, ShardConfig config, EmbeddingLayout layout, long writer = 0) : IEmbeddingStore
{
    /// <summary>
    /// A shard call takes milliseconds. One to a silo that just died would otherwise wait for Orleans' response
    /// timeout (10 s) before it is retried; giving up after this long sends the retry, which reaches the shard's
    /// new activation once the silo is declared dead. Retries are safe: lookups read, updates are idempotent by step.
    /// </summary>
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(2);

    readonly ResiliencePipeline _retry = Resilience.Retry(TimeSpan.FromSeconds(60));

    public ShardConfig Config => config;

    IEmbeddingShardGrain Grain(int shard) => grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(config.JobId, shard / config.K, shard % config.K));

    public async ValueTask<float[]> Lookup(long step, IReadOnlyList<long> ids, CancellationToken ct = default)
    {
        var dim = layout.Dim;
        var result = new float[ids.Count * dim];
        await Task.WhenAll(ByShard(ids).Select(async shard =>
        {
            var rows = RowBytes(shard.Select(n => layout.LocalRow(ids[n])));
            var bytes = await _retry.ExecuteAsync(async _ => await Grain(shard.Key).Lookup(config, step, rows).WaitAsync(CallTimeout), ct);
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
            await _retry.ExecuteAsync(async _ => await Grain(shard.Key).Update(config, step, rows, payload, writer).WaitAsync(CallTimeout), ct);
        }));
    }

    /// <summary>Raises every shard's writer fence to this store's writer, before its first step.</summary>
    public Task Fence(CancellationToken ct = default) => AllShards(g => g.Fence(config, writer), ct);

    /// <summary>Checkpoint baseline: every shard saves itself as of <paramref name="step"/>.</summary>
    public Task Checkpoint(long step, CancellationToken ct = default) => AllShards(g => g.Checkpoint(config, step), ct);

    /// <summary>Checkpoint baseline: every shard goes back to its checkpoint of <paramref name="step"/>.</summary>
    public Task Restore(long step, CancellationToken ct = default) => AllShards(g => g.Restore(config, step), ct);

    Task AllShards(Func<IEmbeddingShardGrain, Task> call, CancellationToken ct) =>
        Task.WhenAll(Enumerable.Range(0, config.Shards).Select(s => _retry.ExecuteAsync(async _ => await call(Grain(s)), ct).AsTask()));

    IEnumerable<IGrouping<int, int>> ByShard(IReadOnlyList<long> ids) => Enumerable.Range(0, ids.Count).GroupBy(n => layout.ShardOf(ids[n]));

    static byte[] RowBytes(IEnumerable<int> rows) => MemoryMarshal.AsBytes(rows.ToArray().AsSpan()).ToArray();
}

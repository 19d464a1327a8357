using System.Runtime.InteropServices;
using Orchestrator.Core.Coding;

namespace Orchestrator.Core.Recommendation;

/// <summary>
/// Where embedding rows live: the 26 tables are concatenated into one id space, ids are striped over
/// <see cref="Shards"/> shards (id mod S, so hot rows spread evenly), and shard s holds its ids in order as rows of
/// <see cref="RowBytes"/> bytes: the weights, then their Adagrad accumulators. Every shard has the same number of
/// rows (the last ones may be padding) because shards of a coding group must be equally long.
/// </summary>
public sealed class EmbeddingLayout
{
    readonly long[] _offsets;

    public EmbeddingLayout(IReadOnlyList<int> tableRows, int dim, int shards)
    {
        if (dim < 1 || shards < 1 || tableRows.Any(r => r < 1)) throw new ArgumentException("need dim ≥ 1, shards ≥ 1 and every table at least one row");
        (TableRows, Dim, Shards) = (tableRows, dim, shards);
        _offsets = new long[tableRows.Count + 1];
        for (int t = 0; t < tableRows.Count; t++) _offsets[t + 1] = _offsets[t] + tableRows[t];
        RowsPerShard = (int)((TotalRows + shards - 1) / shards);
    }

    public IReadOnlyList<int> TableRows { get; }
    public int Dim { get; }
    public int Shards { get; }
    public long TotalRows => _offsets[^1];
    public int RowsPerShard { get; }
    public int RowBytes => 2 * Dim * sizeof(float);
    public int ShardBytes => RowsPerShard * RowBytes;

    public long Id(int table, int row) => _offsets[table] + row;
    public int ShardOf(long id) => (int)(id % Shards);
    public int LocalRow(long id) => (int)(id / Shards);
    public long IdOf(int shard, int localRow) => (long)localRow * Shards + shard;
}

/// <summary>Embedding rows with their Adagrad state, as raw bytes: [weights (dim floats) | accumulators (dim floats)].</summary>
public static class AdagradRows
{
    /// <summary>A row's first bytes: weights uniform in ±1/√dim from (seed, id) alone, accumulators zero.</summary>
    public static byte[] Initial(int seed, long id, int dim)
    {
        var row = new float[2 * dim];
        var state = (ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)id * 0xBF58476D1CE4E5B9UL;
        var bound = 1 / MathF.Sqrt(dim);
        for (int c = 0; c < dim; c++)
        {
            // SplitMix64: a fixed sequence per (seed, id), so every process initializes a row identically.
            state += 0x9E3779B97F4A7C15UL;
            var z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            row[c] = ((float)(z >> 40) / (1 << 24) * 2 - 1) * bound;
        }
        return MemoryMarshal.AsBytes(row.AsSpan()).ToArray();
    }

    public static ReadOnlySpan<float> Weights(ReadOnlySpan<byte> row, int dim) => MemoryMarshal.Cast<byte, float>(row)[..dim];

    /// <summary>One Adagrad step on a row: acc += g², w −= lr · g / (√acc + eps). Deterministic in (row, g).</summary>
    public static byte[] Update(ReadOnlySpan<byte> row, ReadOnlySpan<float> gradient, float lr, float eps = 1e-8f)
    {
        var values = MemoryMarshal.Cast<byte, float>(row).ToArray();
        var dim = values.Length / 2;
        for (int c = 0; c < dim; c++)
        {
            var g = gradient[c];
            values[dim + c] += g * g;
            values[c] -= lr * g / (MathF.Sqrt(values[dim + c]) + eps);
        }
        return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
    }
}

/// <summary>
/// All embedding shards of a job in one process, optionally protected by coding groups of k data shards and r
/// parity shards following the shard protocol (prepare, deltas to every parity, commit). Used by a local run and
/// by tests and benchmarks; in the cluster each shard is a grain running the same classes.
/// </summary>
public sealed class LocalEmbeddingStore : IEmbeddingStore
{
    readonly EmbeddingLayout _layout;
    readonly float _lr;
    readonly ErasureCode? _code;

    public LocalEmbeddingStore(EmbeddingLayout layout, int seed, float lr, int k = 0, int r = 0)
    {
        (_layout, _lr) = (layout, lr);
        Data = Enumerable.Range(0, layout.Shards).Select(s => new DataShard(s, layout.RowBytes, InitialShard(layout, seed, s))).ToArray();
        if (k > 0 && r > 0)
        {
            if (layout.Shards % k != 0) throw new ArgumentException($"{layout.Shards} shards do not split into coding groups of k = {k}");
            _code = new ErasureCode(k, r);
            Parity = Enumerable.Range(0, layout.Shards / k).Select(g =>
                _code.Encode(Data.Skip(g * k).Take(k).Select(d => d.Bytes).ToList())
                    .Select((p, j) => new ParityShard(j, _code, layout.RowBytes, p, new long[k])).ToArray()).ToArray();
        }
    }

    public DataShard[] Data { get; }
    /// <summary>Per coding group, its parity shards (empty without coding).</summary>
    public ParityShard[][] Parity { get; } = [];
    public ErasureCode? Code => _code;

    public static byte[] InitialShard(EmbeddingLayout layout, int seed, int shard)
    {
        var bytes = new byte[layout.ShardBytes];
        for (int row = 0; row < layout.RowsPerShard; row++)
        {
            var id = layout.IdOf(shard, row);
            if (id < layout.TotalRows) AdagradRows.Initial(seed, id, layout.Dim).CopyTo(bytes, row * layout.RowBytes);
        }
        return bytes;
    }

    public ValueTask<float[]> Lookup(long step, IReadOnlyList<long> ids, CancellationToken ct = default)
    {
        var result = new float[ids.Count * _layout.Dim];
        for (int n = 0; n < ids.Count; n++)
            AdagradRows.Weights(Data[_layout.ShardOf(ids[n])].Row(_layout.LocalRow(ids[n])), _layout.Dim).CopyTo(result.AsSpan(n * _layout.Dim));
        return ValueTask.FromResult(result);
    }

    public ValueTask Update(long step, IReadOnlyList<long> ids, float[] gradients, CancellationToken ct = default)
    {
        foreach (var shard in Enumerable.Range(0, ids.Count).GroupBy(n => _layout.ShardOf(ids[n])))
        {
            var rows = shard.Select(n => _layout.LocalRow(ids[n])).ToArray();
            var gradientOf = shard.ToDictionary(n => _layout.LocalRow(ids[n]), n => n);
            var data = Data[shard.Key];
            var delta = data.Prepare(step, rows, (row, bytes) => AdagradRows.Update(bytes.Span, gradients.AsSpan(gradientOf[row] * _layout.Dim, _layout.Dim), _lr));
            if (delta is null) continue;
            if (_code is { } code)
                foreach (var parity in Parity[shard.Key / code.K]) parity.Apply(shard.Key % code.K, delta);
            data.Commit();
        }
        return ValueTask.CompletedTask;
    }
}

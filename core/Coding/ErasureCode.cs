namespace Orchestrator.Core.Coding;

/// <summary>
/// A systematic maximum-distance-separable code over the raw bytes of k equally long data shards, with r parity
/// shards: any k of the k + r shards rebuild all of them, bit for bit (so NaN payloads, infinities and −0 of the
/// floats inside come back exactly). r = 1 is XOR parity (RAID-5); r ≥ 2 is Reed–Solomon over GF(2^8) with a
/// Cauchy matrix (every square submatrix of a Cauchy matrix is invertible, hence MDS).
/// Parity follows data by deltas: when bytes of data shard i change from old to new, each parity j applies
/// <c>parity_j ^= C[j,i] · (old ⊕ new)</c> on the same bytes, without re-encoding anything else.
/// </summary>
public sealed class ErasureCode
{
    readonly byte[,] _coefficients; // [r, k]

    public ErasureCode(int k, int r)
    {
        if (k < 1 || r < 1 || k + r > 256) throw new ArgumentException($"need k ≥ 1, r ≥ 1 and k + r ≤ 256; got k {k}, r {r}");
        (K, R) = (k, r);
        _coefficients = new byte[r, k];
        for (int j = 0; j < r; j++)
            for (int i = 0; i < k; i++)
                // Cauchy: 1 / (x_j + y_i) with x_j = j and y_i = r + i, disjoint sets. r = 1: all ones (XOR).
                _coefficients[j, i] = r == 1 ? (byte)1 : GaloisField.Inverse((byte)(j ^ (r + i)));
    }

    public int K { get; }
    public int R { get; }

    /// <summary>The coefficient with which data shard <paramref name="data"/> enters parity <paramref name="parity"/>.</summary>
    public byte Coefficient(int parity, int data) => _coefficients[parity, data];

    /// <summary>Computes all parity shards from the data shards.</summary>
    public byte[][] Encode(IReadOnlyList<byte[]> data)
    {
        if (data.Count != K) throw new ArgumentException($"expected {K} data shards, got {data.Count}");
        var length = data[0].Length;
        if (data.Any(d => d.Length != length)) throw new ArgumentException("data shards differ in length");
        var parity = new byte[R][];
        for (int j = 0; j < R; j++)
        {
            parity[j] = new byte[length];
            for (int i = 0; i < K; i++) GaloisField.MultiplyAdd(_coefficients[j, i], data[i], parity[j]);
        }
        return parity;
    }

    /// <summary>Brings parity <paramref name="parity"/> up to date after bytes of data shard <paramref name="data"/>
    /// changed: <paramref name="delta"/> is old ⊕ new of those bytes, which start at <paramref name="offset"/>.</summary>
    public void ApplyDelta(int parity, int data, ReadOnlySpan<byte> delta, Span<byte> parityShard, int offset = 0) =>
        GaloisField.MultiplyAdd(_coefficients[parity, data], delta, parityShard.Slice(offset, delta.Length));

    /// <summary>old ⊕ new, the delta that <see cref="ApplyDelta"/> takes.</summary>
    public static byte[] Delta(ReadOnlySpan<byte> before, ReadOnlySpan<byte> after)
    {
        var delta = after.ToArray();
        System.Numerics.Tensors.TensorPrimitives.Xor(before, delta, delta);
        return delta;
    }

    /// <summary>
    /// Rebuilds every missing shard. <paramref name="shards"/> holds k data shards then r parity shards, null where
    /// lost; at least k must be present. Returns the complete set (present shards are the same arrays).
    /// </summary>
    public byte[][] Reconstruct(IReadOnlyList<byte[]?> shards)
    {
        if (shards.Count != K + R) throw new ArgumentException($"expected {K + R} shards (data then parity), got {shards.Count}");
        var present = Enumerable.Range(0, K + R).Where(i => shards[i] is not null).ToList();
        if (present.Count < K) throw new InvalidOperationException($"only {present.Count} of {K + R} shards survive; at least {K} are needed to rebuild (r = {R} failures tolerated)");
        var length = shards[present[0]]!.Length;
        var result = shards.ToArray();
        var lostData = Enumerable.Range(0, K).Where(i => shards[i] is null).ToList();
        if (lostData.Count > 0)
        {
            // The rows of the generator matrix [I; C] for k surviving shards form an invertible k×k matrix.
            var use = present.Take(K).ToList();
            var m = new byte[K, K];
            for (int row = 0; row < K; row++)
                for (int col = 0; col < K; col++)
                    m[row, col] = use[row] < K ? (byte)(use[row] == col ? 1 : 0) : _coefficients[use[row] - K, col];
            var inverse = GaloisField.Invert(m);
            foreach (var d in lostData)
            {
                var rebuilt = new byte[length];
                for (int t = 0; t < K; t++) GaloisField.MultiplyAdd(inverse[d, t], shards[use[t]]!, rebuilt);
                result[d] = rebuilt;
            }
        }
        for (int j = 0; j < R; j++)
        {
            if (result[K + j] is not null) continue;
            var parity = new byte[length];
            for (int i = 0; i < K; i++) GaloisField.MultiplyAdd(_coefficients[j, i], result[i]!, parity);
            result[K + j] = parity;
        }
        return result!;
    }
}

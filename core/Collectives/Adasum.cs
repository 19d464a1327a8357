using System.Numerics.Tensors;

namespace Orchestrator.Core.Collectives;

/// <summary>
/// Adasum (Maleki et al., MLSys 2021), per tensor:
/// Adasum(a, b) = (1 − a·b / (2‖a‖²))·a + (1 − a·b / (2‖b‖²))·b.
/// Dot products and squared norms accumulate in double, and the scaled add runs in double before rounding to
/// float, as in Horovod; a vector with ‖v‖² below sqrt(DBL_MIN) gets coefficient 1, so a zero vector leaves the
/// other unchanged and nothing becomes NaN.
/// </summary>
public static class Adasum
{
    /// <summary>sqrt(DBL_MIN), Horovod's threshold for "this vector is zero".</summary>
    public static readonly double NormFloor = Math.Sqrt(2.2250738585072014E-308);

    // Values are widened to double block by block; large blocks keep the per-call overhead of the vector kernels small.
    const int Block = 16 * 1024;

    /// <summary>The three sums the coefficients need; partial sums over slices add up.</summary>
    public readonly record struct Partials(double Dot, double ANormSquared, double BNormSquared)
    {
        public static Partials operator +(Partials x, Partials y) =>
            new(x.Dot + y.Dot, x.ANormSquared + y.ANormSquared, x.BNormSquared + y.BNormSquared);
    }

    public static Partials Measure(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException("a and b differ in length");
        double dot = 0, aa = 0, bb = 0;
        using var blocks = new WidenedBlocks(a, b);
        while (blocks.MoveNext())
        {
            dot += TensorPrimitives.Dot<double>(blocks.X, blocks.Y);
            aa += TensorPrimitives.Dot<double>(blocks.X, blocks.X);
            bb += TensorPrimitives.Dot<double>(blocks.Y, blocks.Y);
        }
        return new Partials(dot, aa, bb);
    }

    public static (double A, double B) Coefficients(Partials p) => (
        p.ANormSquared < NormFloor ? 1.0 : 1.0 - p.Dot / (2 * p.ANormSquared),
        p.BNormSquared < NormFloor ? 1.0 : 1.0 - p.Dot / (2 * p.BNormSquared));

    /// <summary>a ← ca·a + cb·b, computed in double and rounded once to float.</summary>
    public static void Combine(Span<float> a, ReadOnlySpan<float> b, double ca, double cb)
    {
        using var blocks = new WidenedBlocks(a, b);
        while (blocks.MoveNext())
        {
            TensorPrimitives.Multiply(blocks.X, ca, blocks.X);
            TensorPrimitives.MultiplyAdd(blocks.Y, cb, blocks.X, blocks.X);
            TensorPrimitives.ConvertTruncating<double, float>(blocks.X, a.Slice(blocks.Start, blocks.X.Length));
        }
    }

    /// <summary>Walks two float vectors in blocks, each widened to double (X from a, Y from b).</summary>
    ref struct WidenedBlocks(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        readonly ReadOnlySpan<float> _a = a, _b = b;
        readonly double[] _rented = System.Buffers.ArrayPool<double>.Shared.Rent(2 * Block);
        int _next;

        public int Start { get; private set; }
        public Span<double> X { get; private set; }
        public Span<double> Y { get; private set; }

        public bool MoveNext()
        {
            if (_next >= _a.Length) return false;
            Start = _next;
            var n = Math.Min(Block, _a.Length - Start);
            X = _rented.AsSpan(0, n);
            Y = _rented.AsSpan(Block, n);
            TensorPrimitives.ConvertTruncating<float, double>(_a.Slice(Start, n), X);
            TensorPrimitives.ConvertTruncating<float, double>(_b.Slice(Start, n), Y);
            _next += n;
            return true;
        }

        public readonly void Dispose() => System.Buffers.ArrayPool<double>.Shared.Return(_rented);
    }

    /// <summary>a ← Adasum(a, b) for one tensor.</summary>
    public static void Pairwise(Span<float> a, ReadOnlySpan<float> b)
    {
        var (ca, cb) = Coefficients(Measure(a, b));
        Combine(a, b, ca, cb);
    }

    /// <summary>a ← Adasum(a, b) tensor by tensor: a model is never combined as one flattened vector.</summary>
    public static void Pairwise(Span<float> a, ReadOnlySpan<float> b, TensorLayout layout)
    {
        foreach (var (offset, length) in layout.Tensors) Pairwise(a.Slice(offset, length), b.Slice(offset, length));
    }
}

/// <summary>Where each tensor of a model lies in one flat gradient buffer.</summary>
public sealed class TensorLayout
{
    public TensorLayout(IReadOnlyList<int> lengths)
    {
        if (lengths.Any(l => l < 0)) throw new ArgumentException("tensor lengths must not be negative");
        var offset = 0;
        Tensors = lengths.Select(l => { var t = (offset, l); offset += l; return t; }).ToList();
        Length = offset;
    }

    public IReadOnlyList<(int Offset, int Length)> Tensors { get; }
    public int Length { get; }

    public static TensorLayout Single(int length) => new([length]);
}

/// <summary>
/// The oracle: Adasum over N ranks' vectors in one process, all in double, in the exact tree the distributed
/// algorithm uses. Ranks P..N−1 beyond the largest power of two P ≤ N are first folded into ranks 0..N−P−1
/// (Adasum(v[r−P], v[r]), the lower rank as a); then levels d = 1, 2, 4, … combine the subtree results
/// [i, i+d) and [i+d, i+2d), as Horovod's vector-halving distance-doubling does.
/// </summary>
public static class AdasumReference
{
    public static double[] Reduce(IReadOnlyList<float[]> ranks, TensorLayout layout)
    {
        var vectors = ranks.Select(r => r.Select(x => (double)x).ToArray()).ToArray();
        var p = LargestPowerOfTwoAtMost(vectors.Length);
        for (int r = p; r < vectors.Length; r++) vectors[r - p] = Pair(vectors[r - p], vectors[r], layout);
        for (int d = 1; d < p; d *= 2)
            for (int i = 0; i < p; i += 2 * d) vectors[i] = Pair(vectors[i], vectors[i + d], layout);
        return vectors[0];
    }

    public static int LargestPowerOfTwoAtMost(int n)
    {
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(n), "at least one rank");
        var p = 1;
        while (p * 2 <= n) p *= 2;
        return p;
    }

    static double[] Pair(double[] a, double[] b, TensorLayout layout)
    {
        var result = new double[a.Length];
        foreach (var (offset, length) in layout.Tensors)
        {
            double dot = 0, aa = 0, bb = 0;
            for (int i = offset; i < offset + length; i++)
            {
                dot += a[i] * b[i];
                aa += a[i] * a[i];
                bb += b[i] * b[i];
            }
            var (ca, cb) = Adasum.Coefficients(new Adasum.Partials(dot, aa, bb));
            for (int i = offset; i < offset + length; i++) result[i] = ca * a[i] + cb * b[i];
        }
        return result;
    }
}

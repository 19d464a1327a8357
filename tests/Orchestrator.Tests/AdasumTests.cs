using Orchestrator.Core.Collectives;

namespace Orchestrator.Tests;

/// <summary>Adasum's defining properties (Maleki et al.; Horovod's tests), for odd and even lengths up to 10^6.</summary>
public class AdasumTests
{
    public static TheoryData<int> Lengths() => [1, 2, 7, 8, 1023, 1024, 65_535, 65_536, 999_999, 1_000_000];

    static float[] Random(int n, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();
    }

    static float[] Adasum2(float[] a, float[] b)
    {
        var result = (float[])a.Clone();
        Adasum.Pairwise(result, b);
        return result;
    }

    static void AssertClose(float[] expected, float[] actual, double relative)
    {
        double worst = 0, scale = expected.Max(x => Math.Abs((double)x));
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs((double)expected[i] - actual[i]));
        Assert.True(worst <= relative * Math.Max(scale, double.Epsilon), $"max difference {worst:E3} against scale {scale:E3}");
    }

    [Theory, MemberData(nameof(Lengths))]
    public void OfAVectorWithItself_IsTheVector(int n)
    {
        var g = Random(n, 1);

        Assert.Equal(g, Adasum2(g, g));
    }

    [Theory, MemberData(nameof(Lengths))]
    public void OfOrthogonalVectors_IsTheirSum(int n)
    {
        // Disjoint supports: exactly orthogonal in floating point.
        var a = Random(n, 2).Select((x, i) => i % 2 == 0 ? x : 0f).ToArray();
        var b = Random(n, 3).Select((x, i) => i % 2 == 1 ? x : 0f).ToArray();

        Assert.Equal(a.Zip(b, (x, y) => x + y).ToArray(), Adasum2(a, b));
    }

    [Theory, MemberData(nameof(Lengths))]
    public void OfParallelVectors_IsTheMeanOfTheirScales(int n)
    {
        var v = Random(n, 4);
        float c1 = 0.75f, c2 = 3.5f;

        var result = Adasum2(v.Select(x => c1 * x).ToArray(), v.Select(x => c2 * x).ToArray());

        AssertClose(v.Select(x => (c1 + c2) / 2 * x).ToArray(), result, 1e-6);
        Assert.Equal(new float[n], Adasum2(v, v.Select(x => -x).ToArray()));
        Assert.Equal(v.Select(x => 1.5f * x).ToArray(), Adasum2(v, v.Select(x => 2f * x).ToArray()));
    }

    [Theory]
    [InlineData(1.2e-38f)]   // near the smallest normal float: squares underflow in float, not in double
    [InlineData(1.7e19f)]    // near sqrt(float.MaxValue): squares overflow in float, not in double
    public void ExtremeMagnitudes_StillGiveTheMeanOfParallelInputs(float magnitude)
    {
        foreach (var n in new[] { 1, 1000, 100_001 })
        {
            var v = Random(n, 5).Select(x => (x >= 0 ? 1 : -1) * magnitude * (0.5f + Math.Abs(x) / 2)).ToArray();

            var result = Adasum2(v, v.Select(x => 3f * x).ToArray());

            AssertClose(v.Select(x => 2f * x).ToArray(), result, 1e-6);
            Assert.All(result, x => Assert.True(float.IsFinite(x)));
        }
    }

    [Theory, MemberData(nameof(Lengths))]
    public void WithZeroVectors_LeavesTheOtherUnchanged_AndIsNeverNaN(int n)
    {
        var b = Random(n, 6);
        var zero = new float[n];

        Assert.Equal(b, Adasum2(zero, b));
        Assert.Equal(b, Adasum2(b, zero));
        Assert.Equal(zero, Adasum2(zero, zero));
    }

    [Theory, MemberData(nameof(Lengths))]
    public void IsSymmetric_AndScalesLinearly(int n)
    {
        var a = Random(n, 7);
        var b = Random(n, 8);

        Assert.Equal(Adasum2(a, b), Adasum2(b, a));
        // Scaling by a power of two is exact in floating point, so equality is exact too.
        Assert.Equal(Adasum2(a, b).Select(x => 4f * x).ToArray(), Adasum2(a.Select(x => 4f * x).ToArray(), b.Select(x => 4f * x).ToArray()));
        AssertClose(Adasum2(a, b).Select(x => 0.3f * x).ToArray(), Adasum2(a.Select(x => 0.3f * x).ToArray(), b.Select(x => 0.3f * x).ToArray()), 1e-6);
    }

    [Fact]
    public void IsAppliedPerTensor_NotToTheFlattenedModel()
    {
        var a = Random(300, 9);
        var b = Random(300, 10);
        var layout = new TensorLayout([100, 50, 150]);

        var whole = (float[])a.Clone();
        Adasum.Pairwise(whole, b, layout);
        var separate = new List<float>();
        foreach (var (offset, length) in layout.Tensors)
            separate.AddRange(Adasum2(a[offset..(offset + length)], b[offset..(offset + length)]));

        Assert.Equal(separate.ToArray(), whole);
        Assert.NotEqual(Adasum2(a, b), whole);
    }

    [Fact]
    public void Reference_MatchesPairwiseForTwoRanks_AndIsDefinedForAnyRankCount()
    {
        var a = Random(1000, 11);
        var b = Random(1000, 12);
        var layout = TensorLayout.Single(1000);

        var reference = AdasumReference.Reduce([a, b], layout);
        AssertClose(Adasum2(a, b), reference.Select(x => (float)x).ToArray(), 1e-7);
        for (int ranks = 1; ranks <= 9; ranks++)
        {
            var same = Enumerable.Repeat(a, ranks).ToList();
            // Adasum of identical gradients is that gradient, whatever the tree.
            AssertClose(a, AdasumReference.Reduce(same, layout).Select(x => (float)x).ToArray(), 1e-12);
        }
    }
}

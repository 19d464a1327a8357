using System.Net;
using Orchestrator.Core.Collectives;
using Orchestrator.Tests.Infrastructure;

namespace Orchestrator.Tests;

/// <summary>All-reduce over real loopback sockets with 1 to 9 ranks in one process.</summary>
public class CollectiveTests
{
    static readonly TensorLayout Layout = new([1000, 1, 37, 5003, 2]);

    static Task<float[][]> OnRanks(int n, Func<Collective, int, float[], Task> body, Func<int, float[]> input) =>
        LoopbackRanks.Run(n, async (c, r) =>
        {
            var buffer = input(r);
            await body(c, r, buffer);
            return buffer;
        });

    static float[] Gradient(int rank, int length = 6043) =>
        Enumerable.Range(0, length).Select(i => (float)Math.Sin(rank * 7.1 + i * 0.37) * (1 + rank % 3)).ToArray();

    static void AssertAllRanksBitIdentical(float[][] results)
    {
        foreach (var r in results.Skip(1)) Assert.Equal(results[0], r);
    }

    static double RelativeError(double[] expected, float[] actual) => Compare.Relative(actual, expected);

    public static TheoryData<int> RankCounts() => [1, 2, 3, 4, 5, 6, 7, 8, 9];

    [Theory, MemberData(nameof(RankCounts))]
    public async Task RingSumAndAverage_EqualADoublePrecisionReference_OnEveryRank(int n)
    {
        var inputs = Enumerable.Range(0, n).Select(r => Gradient(r)).ToList();
        var expected = Enumerable.Range(0, Layout.Length).Select(i => inputs.Sum(x => (double)x[i])).ToArray();
        // Float rounding of n−1 additions (and one division): at most n·ε·Σ|x| per element.
        var bound = Enumerable.Range(0, Layout.Length).Select(i => n * Math.Pow(2, -24) * inputs.Sum(x => Math.Abs((double)x[i]))).ToArray();

        var sums = await OnRanks(n, (c, _, b) => c.AllReduce(b, Layout, GradientCombine.Sum, step: 1), r => Gradient(r));
        var means = await OnRanks(n, (c, _, b) => c.AllReduce(b, Layout, GradientCombine.Average, step: 1), r => Gradient(r));

        AssertAllRanksBitIdentical(sums);
        AssertAllRanksBitIdentical(means);
        for (int i = 0; i < Layout.Length; i++)
        {
            Assert.True(Math.Abs(sums[0][i] - expected[i]) <= bound[i], $"sum[{i}] = {sums[0][i]}, expected {expected[i]}");
            Assert.True(Math.Abs(means[0][i] - expected[i] / n) <= bound[i] / n * 2, $"mean[{i}] = {means[0][i]}, expected {expected[i] / n}");
        }
    }

    [Theory, MemberData(nameof(RankCounts))]
    public async Task Adasum_EqualsTheOneProcessReferenceTree_OnEveryRank(int n)
    {
        var inputs = Enumerable.Range(0, n).Select(r => Gradient(r)).ToList();
        var expected = AdasumReference.Reduce(inputs, Layout);

        var results = await OnRanks(n, (c, _, b) => c.AllReduce(b, Layout, GradientCombine.Adasum, step: 7), r => Gradient(r));

        AssertAllRanksBitIdentical(results);
        Assert.True(RelativeError(expected, results[0]) < 1e-5, $"N={n}: error {RelativeError(expected, results[0]):E2}");
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public async Task Adasum_OfIdenticalGradients_IsThatGradient(int n)
    {
        var results = await OnRanks(n, (c, _, b) => c.AllReduce(b, Layout, GradientCombine.Adasum, step: 1), _ => Gradient(3));

        Assert.True(RelativeError(Gradient(3).Select(x => (double)x).ToArray(), results[0]) < 1e-6);
        AssertAllRanksBitIdentical(results);
    }

    [Fact]
    public async Task TinyBuffers_SmallerThanTheRankCount_Work()
    {
        var layout = new TensorLayout([1, 2]);
        var results = await OnRanks(8, (c, _, b) => c.AllReduce(b, layout, GradientCombine.Adasum, step: 1), r => [r + 1f, 1f, -r]);
        var sums = await OnRanks(8, (c, _, b) => c.AllReduce(b, layout, GradientCombine.Sum, step: 1), r => [r + 1f, 1f, -r]);

        AssertAllRanksBitIdentical(results);
        Assert.Equal([36f, 8f, -28f], sums[0]);
        var reference = AdasumReference.Reduce(Enumerable.Range(0, 8).Select(r => new[] { r + 1f, 1f, -r }).ToList(), layout);
        Assert.True(RelativeError(reference, results[0]) < 1e-6);
    }

    [Fact]
    public async Task Broadcast_CopiesTheRootsBufferToEveryRank()
    {
        var results = await OnRanks(5, (c, _, b) => c.Broadcast(b, root: 0, step: 1), r => Gradient(r, 10_000));

        Assert.All(results, r => Assert.Equal(Gradient(0, 10_000), r));
    }

    [Fact]
    public async Task FramesOfAStaleEpoch_AreRefused_AndTheReceiverTimesOut()
    {
        var listeners = Enumerable.Range(0, 2).Select(_ => TcpRankTransport.BindListener(IPAddress.Loopback)).ToList();
        var endpoints = listeners.Select(l => (IPEndPoint)l.LocalEndpoint).ToList();
        await using var current = TcpRankTransport.Start(new RankMembership("job", Epoch: 5, endpoints), 1, listeners[1]);
        await using var stale = TcpRankTransport.Start(new RankMembership("job", Epoch: 4, endpoints), 0, listeners[0]);
        current.ReceiveTimeout = TimeSpan.FromMilliseconds(500);

        // The stale rank's connection is refused at its hello; its send may fail or vanish, never arrive.
        try { await stale.Send(1, step: 1, tag: 9, new byte[16]); } catch (PeerFailedException) { }
        var e = await Assert.ThrowsAsync<PeerFailedException>(async () => await current.Receive(0, step: 1, tag: 9, new byte[16]));

        Assert.Equal(0, e.Peer);
        Assert.True(current.RefusedFrames >= 1);
    }

    [Fact]
    public async Task AFrozenPeer_BecomesAFailureWithinTheDeadline_NotAHang()
    {
        var listeners = Enumerable.Range(0, 2).Select(_ => TcpRankTransport.BindListener(IPAddress.Loopback)).ToList();
        var membership = new RankMembership("job", 1, listeners.Select(l => (IPEndPoint)l.LocalEndpoint).ToList());
        await using var waiting = TcpRankTransport.Start(membership, 0, listeners[0]);
        await using var silent = TcpRankTransport.Start(membership, 1, listeners[1]);
        waiting.ReceiveTimeout = TimeSpan.FromSeconds(1);
        var clock = System.Diagnostics.Stopwatch.StartNew();

        await Assert.ThrowsAsync<PeerFailedException>(async () => await new Collective(waiting).RingAllReduce(new float[100], average: false, step: 1));

        Assert.InRange(clock.Elapsed.TotalSeconds, 0.5, 5);
    }
}

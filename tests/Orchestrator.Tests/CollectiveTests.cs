using System.Net;
using Orchestrator.Core.Collectives;
using Orchestrator.Core.DataPlane;

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
        var endpoints = listeners.Select(l => l.LocalEndpoint).ToList();
        await using var current = TcpRankTransport.Start(new RankMembership("job", MembershipEpoch: 5, endpoints), 1, listeners[1]);
        await using var stale = TcpRankTransport.Start(new RankMembership("job", MembershipEpoch: 4, endpoints), 0, listeners[0]);
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
        var membership = new RankMembership("job", 1, listeners.Select(l => l.LocalEndpoint).ToList());
        await using var waiting = TcpRankTransport.Start(membership, 0, listeners[0]);
        await using var silent = TcpRankTransport.Start(membership, 1, listeners[1]);
        waiting.ReceiveTimeout = TimeSpan.FromSeconds(1);
        var clock = System.Diagnostics.Stopwatch.StartNew();

        await Assert.ThrowsAsync<PeerFailedException>(async () => await new Collective(waiting).RingAllReduce(new float[100], average: false, step: 1));

        Assert.InRange(clock.Elapsed.TotalSeconds, 0.5, 5);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(7)]
    public async Task Exchange_GivesEveryRankEveryRanksValue(int n)
    {
        var results = await LoopbackRanks.Run(n, (c, r) => c.Exchange(1000L * r - 3, step: -2));

        Assert.All(results, all => Assert.Equal(Enumerable.Range(0, n).Select(r => 1000L * r - 3), all));
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(2, 3_000_001)]
    public async Task BroadcastOfBytes_DeliversTheRootsBytesOfAnyLength(int root, int length)
    {
        var payload = Enumerable.Range(0, length).Select(i => (byte)(i * 31 + 7)).ToArray();

        var results = await LoopbackRanks.Run(4, (c, r) => c.Broadcast(r == root ? payload : null, root, step: -2, maxBytes: length));

        Assert.All(results, bytes => Assert.Equal(payload, bytes));
    }

    static (RankListener, RankListener, List<IPEndPoint>) TwoListeners()
    {
        var (a, b) = (TcpRankTransport.BindListener(IPAddress.Loopback), TcpRankTransport.BindListener(IPAddress.Loopback));
        return (a, b, [a.LocalEndpoint, b.LocalEndpoint]);
    }

    [Fact]
    public async Task APeerAlreadyInTheNextEpoch_IsHeldUntilThatEpochStartsHere_NotRefused()
    {
        var (listener0, listener1, endpoints) = TwoListeners();
        await using var _0 = listener0;
        await using var _1 = listener1;
        await using var oldEpoch = TcpRankTransport.Start(new RankMembership("job", 1, endpoints), 1, listener1, keepListener: true);
        await using var ahead = TcpRankTransport.Start(new RankMembership("job", 2, endpoints), 0, listener0, keepListener: true);

        // Rank 0 is in epoch 2 already and dials rank 1, whose epoch 2 has not started yet.
        var send = ahead.Send(1, step: 5, tag: 1, new byte[] { 1, 2, 3 }).AsTask();
        await Task.Delay(200);
        await oldEpoch.DisposeAsync();
        await using var newEpoch = TcpRankTransport.Start(new RankMembership("job", 2, endpoints), 1, listener1, keepListener: true);
        var received = new byte[3];
        await newEpoch.Receive(0, step: 5, tag: 1, received);
        await send;

        Assert.Equal(new byte[] { 1, 2, 3 }, received);
        Assert.Equal(0, newEpoch.RefusedFrames);
    }

    [Fact]
    public async Task AListener_RefusesConnectionsOfEpochsOlderThanItsNewest()
    {
        var (listener0, listener1, endpoints) = TwoListeners();
        await using var _0 = listener0;
        await using var _1 = listener1;
        await using var current = TcpRankTransport.Start(new RankMembership("job", 3, endpoints), 1, listener1, keepListener: true);
        await using var stale = TcpRankTransport.Start(new RankMembership("job", 2, endpoints), 0, listener0, keepListener: true);

        try { await stale.Send(1, step: 1, tag: 1, new byte[4]); } catch (PeerFailedException) { }
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (listener1.Refused == 0 && DateTime.UtcNow < deadline) await Task.Delay(20);

        Assert.Equal(1, listener1.Refused);
    }
}

/// <summary>The collective algorithms know only <see cref="IRankTransport"/>: over memory they compute what they compute over TCP.</summary>
public class InMemoryCollectiveTests
{
    static readonly TensorLayout Layout = new([300, 7, 1201]);

    static float[] Gradient(int rank) => Enumerable.Range(0, Layout.Length).Select(i => (float)Math.Cos(rank * 3.3 + i * 0.11) * (rank + 1)).ToArray();

    [Theory]
    [InlineData(3, GradientCombine.Sum)]
    [InlineData(5, GradientCombine.Average)]
    [InlineData(3, GradientCombine.Adasum)]
    [InlineData(6, GradientCombine.Adasum)]
    public async Task AllReduce_OverMemory_IsBitIdenticalToOverTcp(int n, GradientCombine combine)
    {
        async Task<float[]> Reduce(Collective c, int r)
        {
            var buffer = Gradient(r);
            await c.AllReduce(buffer, Layout, combine, step: 3);
            return buffer;
        }

        var overMemory = await new InMemoryRanks(n, TimeSpan.FromSeconds(10)).Run(Reduce);
        var overTcp = await LoopbackRanks.Run(n, Reduce);

        for (int r = 0; r < n; r++) Assert.Equal(overTcp[r], overMemory[r]);
    }

    [Fact]
    public async Task ASilentPeer_FailsItsPeersReceives_AsASilentPeer()
    {
        var ranks = new InMemoryRanks(3, TimeSpan.FromMilliseconds(300), silent: new HashSet<int> { 2 });

        var failures = await Task.WhenAll(Enumerable.Range(0, 2).Select(r => Assert.ThrowsAsync<PeerFailedException>(() =>
            new Collective(ranks.Rank(r)).AllReduce(Gradient(r), Layout, GradientCombine.Sum, step: 1))));

        Assert.All(failures, e => Assert.Equal(PeerFailure.Silent, e.Failure));
        Assert.Contains(failures, e => e.Peer == 2);
    }
}

using Orchestrator.Core.Coding;

namespace Orchestrator.Tests;

/// <summary>
/// The coding group's update and recovery protocol under a crash at every point of a step: after recovery and the
/// worker's retry of the step in flight, every shard equals, bit for bit, the shard of the same run without a crash.
/// </summary>
public class ShardProtocolTests
{
    const int Rows = 12, RowBytes = 16, Steps = 4, CrashStep = 2;

    sealed class Group
    {
        public required ErasureCode Code { get; init; }
        public required DataShard?[] Data { get; set; }
        public required ParityShard?[] Parity { get; set; }
    }

    static Group NewGroup(int k, int r)
    {
        var random = new Random(11);
        var code = new ErasureCode(k, r);
        var bytes = Enumerable.Range(0, k).Select(_ => { var b = new byte[Rows * RowBytes]; random.NextBytes(b); return b; }).ToArray();
        var parity = code.Encode(bytes);
        return new Group
        {
            Code = code,
            Data = bytes.Select((b, i) => (DataShard?)new DataShard(i, RowBytes, b)).ToArray(),
            Parity = parity.Select((p, j) => (ParityShard?)new ParityShard(j, code, RowBytes, p, new long[k])).ToArray(),
        };
    }

    /// <summary>The rows step s touches on shard i, and their update: an Adagrad-like float update (weights, then the
    /// squared-gradient accumulator), deterministic in (step, row), producing NaN and infinities along the way.</summary>
    static int[] Touched(long step, int shard) => Enumerable.Range(0, Rows).Where(r => (r * 7 + step * 3 + shard) % 3 != 0).ToArray();

    static byte[] Update(long step, int row, ReadOnlyMemory<byte> current)
    {
        var floats = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(current.Span).ToArray();
        var half = floats.Length / 2;
        for (int c = 0; c < half; c++)
        {
            var g = (float)Math.Sin(step * 13.1 + row * 3.7 + c) * 1e20f;
            floats[half + c] += g * g;
            floats[c] -= 0.1f * g / MathF.Sqrt(floats[half + c] + 1e-10f);
        }
        return System.Runtime.InteropServices.MemoryMarshal.AsBytes(floats.AsSpan()).ToArray();
    }

    /// <summary>One step as its operations: every data shard prepares, every parity applies every delta, every shard commits.</summary>
    static List<(string Name, int[] Shards, Action Run)> Operations(Group g, long step)
    {
        int k = g.Code.K, r = g.Code.R;
        var deltas = new RowDelta?[k];
        var ops = new List<(string, int[], Action)>();
        for (int i = 0; i < k; i++)
        {
            int d = i;
            ops.Add(($"prepare {d}", [d], () => deltas[d] = g.Data[d]!.Prepare(step, Touched(step, d), (row, bytes) => Update(step, row, bytes))));
        }
        for (int j = 0; j < r; j++)
            for (int i = 0; i < k; i++)
            {
                int p = j, d = i;
                ops.Add(($"parity {p} applies delta {d}", [d, k + p], () => { if (deltas[d] is { } x) g.Parity[p]!.Apply(d, x); }));
            }
        for (int i = 0; i < k; i++)
        {
            int d = i;
            ops.Add(($"commit {d}", [d], () => g.Data[d]!.Commit()));
        }
        return ops;
    }

    static void RunStep(Group g, long step)
    {
        foreach (var (_, _, run) in Operations(g, step)) run();
    }

    static Group FailureFree(int k, int r)
    {
        var g = NewGroup(k, r);
        for (long s = 1; s <= Steps; s++) RunStep(g, s);
        return g;
    }

    static IEnumerable<int[]> Victims(int n, int max) =>
        Enumerable.Range(1, max).SelectMany(size => Combinations(Enumerable.Range(0, n).ToArray(), size));

    static IEnumerable<int[]> Combinations(int[] items, int size) => size == 0
        ? [[]]
        : items.SelectMany((x, i) => Combinations(items[(i + 1)..], size - 1).Select(rest => new[] { x }.Concat(rest).ToArray()));

    [Theory]
    [InlineData(3, 1)]
    [InlineData(2, 2)]
    [InlineData(4, 2)]
    [InlineData(3, 3)]
    public void RebuildingFromReadOnlySnapshots_WhileSurvivorsGoOn_AlsoRecoversExactly(int k, int r) => CrashEverywhere(k, r, RecoverFromSnapshots);

    /// <summary>The survivors are only read; the lost shards are replaced by decoded ones.</summary>
    static void RecoverFromSnapshots(Group g)
    {
        var rebuilt = SnapshotRecovery.Rebuild(g.Code, RowBytes,
            g.Data.Select(d => d is null ? null : DataSnapshot.Of(d)).ToList(),
            g.Parity.Select(p => p is null ? null : ParitySnapshot.Of(p)).ToList());
        g.Data = g.Data.Select((d, i) => d ?? new DataShard(i, RowBytes, rebuilt.Data[i], rebuilt.Versions[i])).ToArray();
        g.Parity = g.Parity.Select((p, j) => p ?? new ParityShard(j, g.Code, RowBytes, rebuilt.Parity[j], rebuilt.Versions)).ToArray();
    }

    static void CrashEverywhere(int k, int r, Action<Group> recover)
    {
        var expected = FailureFree(k, r);
        var cases = 0;
        foreach (var victims in Victims(k + r, r))
        {
            var operationCount = Operations(NewGroup(k, r), CrashStep).Count;
            for (int crashBefore = 0; crashBefore <= operationCount; crashBefore++)
            {
                var g = NewGroup(k, r);
                for (long s = 1; s < CrashStep; s++) RunStep(g, s);
                // The crash: the victims' processes die before operation crashBefore of the step; their state is gone.
                foreach (var (_, _, run) in Operations(g, CrashStep).Take(crashBefore)) run();
                var point = crashBefore < operationCount ? Operations(g, CrashStep)[crashBefore].Name : "after the step";
                foreach (var v in victims)
                {
                    if (v < k) g.Data[v] = null;
                    else g.Parity[v - k] = null;
                }
                recover(g);
                // The worker retries the step it was not acknowledged for; shards that hold it ignore the retry.
                for (long s = CrashStep; s <= Steps; s++) RunStep(g, s);

                for (int i = 0; i < k; i++)
                {
                    Assert.True(expected.Data[i]!.Bytes.AsSpan().SequenceEqual(g.Data[i]!.Bytes), $"victims [{string.Join(",", victims)}], crash before {point}: data shard {i} differs");
                    Assert.Equal(expected.Data[i]!.Version, g.Data[i]!.Version);
                }
                for (int j = 0; j < r; j++)
                {
                    Assert.True(expected.Parity[j]!.Bytes.AsSpan().SequenceEqual(g.Parity[j]!.Bytes), $"victims [{string.Join(",", victims)}], crash before {point}: parity {j} differs");
                    Assert.Equal(expected.Parity[j]!.Applied, g.Parity[j]!.Applied);
                }
                cases++;
            }
        }
        Assert.True(cases > 10);
    }

    [Fact]
    public void ARetriedUpdate_IsNotAppliedTwice()
    {
        var g = NewGroup(2, 1);
        RunStep(g, 1);
        var before = g.Data[0]!.Bytes.ToArray();

        Assert.Null(g.Data[0]!.Prepare(1, Touched(1, 0), (row, bytes) => Update(1, row, bytes)));
        Assert.False(g.Parity[0]!.Apply(0, new RowDelta(1, [0], new byte[RowBytes])));
        Assert.Equal(before, g.Data[0]!.Bytes);
    }

    [Fact]
    public void LosingMoreShardsThanTheParityCovers_IsRefused()
    {
        var g = NewGroup(3, 1);

        var e = Assert.Throws<InvalidOperationException>(() => SnapshotRecovery.Rebuild(g.Code, RowBytes,
            [null, null, DataSnapshot.Of(g.Data[2]!)], g.Parity.Select(p => (ParitySnapshot?)ParitySnapshot.Of(p!)).ToList()));
        Assert.Contains("tolerates 1", e.Message);
    }
}

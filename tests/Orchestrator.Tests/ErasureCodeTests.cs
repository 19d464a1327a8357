using Orchestrator.Core.Coding;

namespace Orchestrator.Tests;

/// <summary>The erasure code rebuilds any r lost shards bit for bit, after any sequence of delta updates.</summary>
public class ErasureCodeTests
{
    [Fact]
    public void FieldArithmetic_HasInversesAndDistributes()
    {
        for (int a = 1; a < 256; a++) Assert.Equal(1, GaloisField.Multiply((byte)a, GaloisField.Inverse((byte)a)));
        var random = new Random(5);
        for (int t = 0; t < 10_000; t++)
        {
            byte a = (byte)random.Next(256), b = (byte)random.Next(256), c = (byte)random.Next(256);
            Assert.Equal(GaloisField.Multiply(a, (byte)(b ^ c)), GaloisField.Multiply(a, b) ^ GaloisField.Multiply(a, c));
            Assert.Equal(GaloisField.Multiply(a, b), GaloisField.Multiply(b, a));
        }
        Assert.Throws<DivideByZeroException>(() => GaloisField.Inverse(0));
    }

    /// <summary>Float bit patterns that arithmetic would not preserve: NaNs with payloads, infinities, −0, denormals.</summary>
    static readonly uint[] SpecialFloats = [0x7FC00000, 0x7F800001, 0xFFC12345, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001, 0x807FFFFF];

    static byte[] RandomShard(Random random, int length)
    {
        var shard = new byte[length];
        random.NextBytes(shard);
        for (int at = 0; at + 4 <= length; at += 4 * random.Next(1, 8))
            BitConverter.TryWriteBytes(shard.AsSpan(at), SpecialFloats[random.Next(SpecialFloats.Length)]);
        return shard;
    }

    static IEnumerable<int[]> Subsets(int n, int maxSize)
    {
        for (int size = 1; size <= maxSize; size++)
        {
            var pick = Enumerable.Range(0, size).ToArray();
            while (true)
            {
                yield return pick.ToArray();
                int i = size - 1;
                while (i >= 0 && pick[i] == n - size + i) i--;
                if (i < 0) break;
                pick[i]++;
                for (int j = i + 1; j < size; j++) pick[j] = pick[j - 1] + 1;
            }
        }
    }

    public static TheoryData<int> Seeds() => [.. Enumerable.Range(1, 24)];

    [Theory, MemberData(nameof(Seeds))]
    public void AfterRandomDeltaUpdates_EveryErasureOfUpToRShards_IsRebuiltBitIdentical(int seed)
    {
        var random = new Random(seed);
        int k = random.Next(1, 9), r = random.Next(1, 4), rowBytes = 4 * random.Next(1, 17), rows = random.Next(1, 40);
        var code = new ErasureCode(k, r);
        var data = Enumerable.Range(0, k).Select(_ => RandomShard(random, rows * rowBytes)).ToArray();
        var parity = code.Encode(data);
        for (int update = 0; update < 200; update++)
        {
            var i = random.Next(k);
            var row = random.Next(rows);
            var count = random.Next(1, rows - row + 1);
            var offset = row * rowBytes;
            var fresh = RandomShard(random, count * rowBytes);
            var delta = ErasureCode.Delta(data[i].AsSpan(offset, fresh.Length), fresh);
            for (int j = 0; j < r; j++) code.ApplyDelta(j, i, delta, parity[j], offset);
            fresh.CopyTo(data[i], offset);
        }
        var truth = data.Concat(parity).ToArray();

        Assert.Equal(code.Encode(data), parity); // deltas kept parity exactly equal to a fresh encoding
        foreach (var lost in Subsets(k + r, r))
        {
            var shards = truth.Select((s, index) => lost.Contains(index) ? null : s).ToArray();
            var rebuilt = code.Reconstruct(shards);
            for (int s = 0; s < k + r; s++) Assert.True(truth[s].AsSpan().SequenceEqual(rebuilt[s]), $"k {k} r {r}, lost [{string.Join(",", lost)}]: shard {s} differs");
        }
    }

    [Fact]
    public void MoreThanRLosses_AreRefusedWithTheReason()
    {
        var code = new ErasureCode(3, 1);
        var shards = code.Encode([new byte[8], new byte[8], new byte[8]]);

        var e = Assert.Throws<InvalidOperationException>(() => code.Reconstruct([null, null, new byte[8], shards[0]]));
        Assert.Contains("at least 3", e.Message);
    }

    [Fact]
    public void SingleParity_IsPlainXor()
    {
        var code = new ErasureCode(3, 1);
        byte[] a = [1, 2, 250], b = [7, 0, 9], c = [255, 128, 3];

        var parity = code.Encode([a, b, c])[0];

        Assert.Equal(new[] { (byte)(1 ^ 7 ^ 255), (byte)(2 ^ 0 ^ 128), (byte)(250 ^ 9 ^ 3) }, parity);
    }
}

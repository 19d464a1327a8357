using Orchestrator.Core.Collectives;
using Orchestrator.Core.Recommendation;
using Orchestrator.Worker.Training;

namespace Orchestrator.Tests;

/// <summary>
/// Data-parallel DLRM ranks over the loopback data plane, their embedding in one in-process store: the same
/// optimization as one trainer with the whole batch, every shard updated once per step, and a rank lost after the
/// gradients were merged costs no step.
/// </summary>
[Collection("torch")]
public class DlrmRankTests
{
    const int Dim = 8, Rows = 300, Shards = 4;
    static readonly int[] Tables = Enumerable.Repeat(Rows, CriteoFormat.CategoricalFeatures).ToArray();
    static readonly EmbeddingLayout Layout = new(Tables, Dim, Shards);
    static readonly DlrmShape Shape = new(Dim, Tables, [16], [16]);
    static readonly Lazy<string> File = new(() =>
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("criteo").FullName, "clicks.tsv");
        CriteoSynth.Write(path, 3000, seed: 2);
        return path;
    });

    static JobSpec Spec(int batch) => JobSpecParser.Parse(
        $"name: ctr\nkind: data-parallel\nworkers: {{min: 1}}\ngradients: average\nmodel: {{type: dlrm, dim: {Dim}, bottom: [16], top: [16], tableRows: {Rows}}}\n" +
        $"data: {{dataset: criteo, path: {File.Value}, testExamples: 500}}\ntrain: {{steps: 100, batchSize: {batch}, optimizer: adam, lr: 0.002, seed: 3}}");

    static LocalEmbeddingStore NewStore() => new(Layout, seed: 3, lr: 0.05f);
    static DlrmRank NewRank(int batch, IEmbeddingStore store) => new(Spec(batch), new DlrmTrainer(Shape, Layout, store, 3, 0.002), GradientCombine.Average);
    static float[] Floats(LocalEmbeddingStore store) => store.Data.SelectMany(d => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(d.Bytes.AsSpan()).ToArray()).ToArray();

    /// <summary>Records which shards each step's updates reach, and can fail one step's update (its rank "dies" there).</summary>
    sealed class WatchedStore(IEmbeddingStore inner, long failAt = -1) : IEmbeddingStore
    {
        public readonly List<(long Step, int Shard)> Updates = [];

        public ValueTask<float[]> Lookup(long step, IReadOnlyList<long> ids, CancellationToken ct = default) => inner.Lookup(step, ids, ct);

        public ValueTask Update(long step, IReadOnlyList<long> ids, float[] gradients, CancellationToken ct = default)
        {
            if (step == failAt) throw new IOException($"this rank dies while updating step {step}");
            lock (Updates) Updates.AddRange(ids.Select(Layout.ShardOf).Distinct().Select(s => (step, s)));
            return inner.Update(step, ids, gradients, ct);
        }
    }

    [Fact]
    public void Merge_SumsEachRowInRankOrder_DividesByTheWorld_AndSortsTheIds()
    {
        static byte[] Share(long[] ids, float[] grads)
        {
            var bytes = new byte[4 + ids.Length * 8 + grads.Length * 4];
            BitConverter.TryWriteBytes(bytes, ids.Length);
            Buffer.BlockCopy(ids, 0, bytes, 4, ids.Length * 8);
            Buffer.BlockCopy(grads, 0, bytes, 4 + ids.Length * 8, grads.Length * 4);
            return bytes;
        }

        var merged = DlrmRank.Merge([Share([7, 2], [1, 2, 3, 4]), Share([2], [10, 20])], dim: 2);

        Assert.Equal([2L, 7L], merged.Ids);
        Assert.Equal([(3f + 10f) / 2, (4f + 20f) / 2, 1f / 2, 2f / 2], merged.Gradients);
    }

    [Fact]
    public async Task TwoRanksWithHalfBatches_MatchOneTrainerWithTheWholeBatch_AndUpdateEachShardOncePerStep()
    {
        const int Steps = 30;
        var shared = NewStore();
        var watched = new WatchedStore(shared);
        var states = await LoopbackRanks.Run(2, async (collective, r) =>
        {
            using var rank = NewRank(16, watched);
            rank.Join(collective, r, 2);
            for (int s = 0; s < Steps; s++) await rank.TrainStep();
            return rank.CaptureState();
        });

        var alone = NewStore();
        using (var single = new DlrmTrainer(Shape, Layout, alone, 3, 0.002))
        {
            var examples = CriteoFormat.Read(File.Value, Tables).Skip(500).Take(Steps * 32).ToList();
            for (int s = 0; s < Steps; s++) await single.TrainStep(examples[(s * 32)..((s + 1) * 32)]);
        }

        Assert.Equal(states[0], states[1]);
        Assert.Equal(watched.Updates.Count, watched.Updates.Distinct().Count());
        Assert.Equal(Enumerable.Range(1, Steps).Select(s => (long)s), watched.Updates.Select(u => u.Step).Distinct().Order());
        var difference = Compare.Relative(Floats(shared), Floats(alone).Select(x => (double)x).ToArray());
        Assert.True(difference <= 1e-4, $"tables differ by {difference:E2}");
    }

    [Fact]
    public async Task NonFiniteGradientsFromOneRank_NeverReachAShard_AndEveryRankSkipsTheStep()
    {
        var store = NewStore();
        var watched = new WatchedStore(store);
        var skipped = await LoopbackRanks.Run(2, async (collective, r) =>
        {
            using var rank = NewRank(16, watched);
            rank.Join(collective, r, 2);
            for (int s = 0; s < 5; s++)
            {
                if (r == 0 && s == 2) rank.PoisonNextStep();
                await rank.TrainStep();
                if (rank.NonFiniteRanks.Count > 0) return (Step: rank.Step, Ranks: rank.NonFiniteRanks.ToArray());
            }
            return (Step: -1L, Ranks: Array.Empty<int>());
        });

        Assert.All(skipped, x => Assert.Equal(3L, x.Step));
        Assert.All(skipped, x => Assert.Equal([0], x.Ranks));
        Assert.DoesNotContain(watched.Updates, u => u.Step == 3);
        Assert.True(Floats(store).All(float.IsFinite));
    }

    [Fact]
    public async Task ARankLostAfterTheMerge_LeavesTheStepToTheSurvivor_WhichFinishesIt_SoNoStepIsLostOrRepeated()
    {
        // With a failure: ranks 0 and 1 train 10 steps; rank 1 dies while updating its shards in step 11 (after the
        // merge); rank 0 finishes step 11 alone in the next membership and trains 9 more.
        var failing = NewStore();
        await using var ranks = new ElasticRanks(2);
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 2).Select(r => Task.Run(async () =>
        {
            using var rank = NewRank(16, new WatchedStore(failing, failAt: r == 1 ? 11 : -1));
            await using (var first = ranks.MembershipEpoch(1, [0, 1], r))
            {
                rank.Join(new Collective(first), r, 2);
                for (int s = 0; s < 10; s++) await rank.TrainStep();
                if (r == 1)
                {
                    await Assert.ThrowsAsync<IOException>(() => rank.TrainStep());
                    return (Step: rank.Step, Root: -2, State: Array.Empty<byte>());
                }
                await Assert.ThrowsAsync<PeerFailedException>(() => rank.TrainStep());
            }
            await using var second = ranks.MembershipEpoch(2, [0], 0);
            rank.Join(new Collective(second), 0, 1);
            var root = await rank.AgreeOnState(joining: false);
            var afterAgreement = rank.Step;
            for (int s = 0; s < 9; s++) await rank.TrainStep();
            return (Step: afterAgreement, Root: root, State: rank.CaptureState());
        })));

        // Without a failure: the same 11 steps on two ranks, then 9 on one.
        var clean = NewStore();
        var handOver = await LoopbackRanks.Run(2, async (collective, r) =>
        {
            using var rank = NewRank(16, clean);
            rank.Join(collective, r, 2);
            for (int s = 0; s < 11; s++) await rank.TrainStep();
            return rank.CaptureState();
        });
        var expected = await LoopbackRanks.Run(1, async (collective, _) =>
        {
            using var rank = NewRank(16, clean);
            rank.RestoreState(handOver[0]);
            rank.Join(collective, 0, 1);
            for (int s = 0; s < 9; s++) await rank.TrainStep();
            return rank.CaptureState();
        });

        Assert.Equal(11, outcomes[0].Step); // the agreement finished step 11
        Assert.Equal(-1, outcomes[0].Root);
        Assert.Equal(expected[0], outcomes[0].State);
        Assert.Equal(Floats(clean), Floats(failing));
    }
}

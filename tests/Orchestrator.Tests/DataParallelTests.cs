using Orchestrator.Core.Collectives;
using Orchestrator.Worker.Training;
using static TorchSharp.torch;

namespace Orchestrator.Tests;

/// <summary>Data-parallel training over the TCP data plane is the same optimization as training on one device.</summary>
[Collection("torch")]
public class DataParallelTests
{
    static FashionMnist Data => FashionMnist.Load(FashionMnistFiles.DefaultPath);

    static JobSpec Spec(int batch, string optimizer = "sgd") => JobSpecParser.Parse(
        $"name: dp\nmodel: {{type: mlp, hidden: [64, 32]}}\ndata: {{dataset: fashion-mnist, trainLimit: 4096}}\ntrain: {{optimizer: {optimizer}, lr: {(optimizer == "sgd" ? 0.05 : 0.002)}, batchSize: {batch}, seed: 3, weightDecay: 0.001}}");

    static Task<float[][]> TrainRanks(int world, JobSpec spec, GradientCombine combine, int steps) =>
        LoopbackRanks.Run(world, async (collective, rank) =>
        {
            using var trainer = new DataParallelRank(spec, Data, rank, world, collective, combine);
            for (int s = 0; s < steps; s++) await trainer.TrainStep();
            return Flatten(trainer.Model);
        });

    static float[] TrainSingle(JobSpec spec, int steps)
    {
        using var single = new ArrayTrainer([spec], Data);
        for (int s = 0; s < steps; s++) single.Step();
        return Flatten(single.Model);
    }

    static float[] Flatten(ArrayModel model) => model.Parameters.SelectMany(p => p.Value.data<float>().ToArray()).ToArray();

    static double RelativeDifference(float[] actual, float[] expected) => Compare.Relative(actual, expected.Select(x => (double)x).ToArray());

    [Theory]
    [InlineData("sgd")]
    [InlineData("adam")]
    public async Task OneRankWithAverage_EqualsTheSingleJob(string optimizer)
    {
        var spec = Spec(32, optimizer);

        var ranks = await TrainRanks(1, spec, GradientCombine.Average, steps: 50);
        var single = TrainSingle(spec, steps: 50);

        Assert.True(RelativeDifference(ranks[0], single) <= 1e-5, $"{RelativeDifference(ranks[0], single):E2}");
    }

    [Theory]
    [InlineData("sgd")]
    [InlineData("adam")]
    public async Task TwoRanksWithAverageAndHalfBatches_EqualOneRankWithTheWholeBatch(string optimizer)
    {
        var ranks = await TrainRanks(2, Spec(16, optimizer), GradientCombine.Average, steps: 50);
        var single = TrainSingle(Spec(32, optimizer), steps: 50);

        Assert.Equal(ranks[0], ranks[1]);
        Assert.True(RelativeDifference(ranks[0], single) <= 1e-4, $"{RelativeDifference(ranks[0], single):E2}");
    }

    [Theory]
    [InlineData(3, GradientCombine.Adasum)]
    [InlineData(3, GradientCombine.Sum)]
    [InlineData(4, GradientCombine.Adasum)]
    public async Task EveryRank_EndsEachStepWithBitIdenticalParameters_AndLearns(int world, GradientCombine combine)
    {
        var spec = Spec(16);
        var initial = TrainSingle(spec, steps: 0);

        var ranks = await TrainRanks(world, spec with { Train = spec.Train with { Lr = 0.02 } }, combine, steps: 40);

        foreach (var r in ranks.Skip(1)) Assert.Equal(ranks[0], r);
        Assert.True(ranks[0].All(float.IsFinite));
        Assert.True(RelativeDifference(ranks[0], initial) > 1e-3, "parameters should have moved");
    }

    [Fact]
    public async Task ARankWithNonFiniteGradients_MakesEveryRankSkipThatStep_AndNamesIt()
    {
        var spec = Spec(16);
        var results = await LoopbackRanks.Run(2, async (collective, r) =>
        {
            using var rank = new DataParallelRank(spec, Data, r, 2, collective, GradientCombine.Adasum);
            for (int s = 0; s < 3; s++) await rank.TrainStep();
            var before = Flatten(rank.Model);
            if (r == 1) rank.PoisonNextStep();
            await rank.TrainStep();
            var skipped = (Unchanged: Flatten(rank.Model).SequenceEqual(before), Ranks: rank.NonFiniteRanks.ToArray(), rank.Step);
            await rank.TrainStep();
            return (Skipped: skipped, After: Flatten(rank.Model), NextStepClean: rank.NonFiniteRanks.Count == 0);
        });

        Assert.All(results, x => Assert.True(x.Skipped.Unchanged, "a skipped step must not move the parameters"));
        Assert.All(results, x => Assert.Equal([1], x.Skipped.Ranks));
        Assert.All(results, x => Assert.Equal(4, x.Skipped.Step));
        Assert.All(results, x => Assert.True(x.NextStepClean));
        Assert.Equal(results[0].After, results[1].After);
        Assert.True(results[0].After.All(float.IsFinite));
    }

    [Fact]
    public async Task WhenARankDiesMidCombination_TheSurvivorsRedoOnlyThatCombination_AndStayBitIdentical()
    {
        var spec = Spec(16);
        await using var ranks = new ElasticRanks(3);
        var results = await Task.WhenAll(Enumerable.Range(0, 3).Select(r => Task.Run(async () =>
        {
            using var rank = new DataParallelRank(spec, Data, GradientCombine.Average);
            await using (var first = ranks.MembershipEpoch(1, [0, 1, 2], r))
            {
                rank.Join(new Collective(first), r, 3);
                for (int s = 0; s < 10; s++) await rank.TrainStep();
                if (r == 2) return (Parameters: Flatten(rank.Model), rank.Step, Root: -2, FailedWithPending: false); // this rank dies
                await Assert.ThrowsAsync<PeerFailedException>(() => rank.TrainStep());
            }
            var failedWithPending = rank.HasPendingGradients && rank.Step == 10;
            await using var second = ranks.MembershipEpoch(2, [0, 1], r);
            rank.Join(new Collective(second), r, 2);
            var root = await rank.AgreeOnState(joining: false);
            for (int s = 0; s < 10; s++) await rank.TrainStep();
            return (Parameters: Flatten(rank.Model), rank.Step, Root: root, FailedWithPending: failedWithPending);
        })));

        Assert.True(results[0].FailedWithPending && results[1].FailedWithPending);
        Assert.Equal([-1, -1], results.Take(2).Select(x => x.Root)); // no broadcast: they redo the combination
        Assert.Equal([20L, 20L], results.Take(2).Select(x => x.Step)); // the redone step counts once: 10 + 10
        Assert.Equal(results[0].Parameters, results[1].Parameters);
    }

    [Fact]
    public async Task AJoiner_ReceivesTheStateByBroadcast_AndThenTrainsInStepWithTheOthers()
    {
        var spec = Spec(16, "adam");
        await using var ranks = new ElasticRanks(3);
        var results = await Task.WhenAll(Enumerable.Range(0, 3).Select(r => Task.Run(async () =>
        {
            using var rank = new DataParallelRank(spec, Data, GradientCombine.Adasum);
            if (r < 2)
            {
                await using var first = ranks.MembershipEpoch(1, [0, 1], r);
                rank.Join(new Collective(first), r, 2);
                for (int s = 0; s < 15; s++) await rank.TrainStep();
            }
            await using var second = ranks.MembershipEpoch(2, [0, 1, 2], r);
            rank.Join(new Collective(second), r, 3);
            var root = await rank.AgreeOnState(joining: r == 2);
            var agreed = rank.CaptureState();
            for (int s = 0; s < 10; s++) await rank.TrainStep();
            return (Agreed: agreed, Root: root, Parameters: Flatten(rank.Model), rank.Step);
        })));

        Assert.All(results, x => Assert.Equal(0, x.Root));
        Assert.All(results, x => Assert.Equal(results[0].Agreed, x.Agreed)); // parameters, Adam moments, step, data position
        Assert.All(results, x => Assert.Equal(25, x.Step));
        Assert.All(results, x => Assert.Equal(results[0].Parameters, x.Parameters));
    }

    [Fact]
    public async Task CapturedState_RestoresIntoAFreshRank_ThatGoesOnExactlyAsTheOriginal()
    {
        var spec = Spec(32, "adam");
        var results = await LoopbackRanks.Run(1, async (collective, _) =>
        {
            using var original = new DataParallelRank(spec, Data, 0, 1, collective, GradientCombine.Average);
            for (int s = 0; s < 140; s++) await original.TrainStep(); // crosses the 128-step epoch boundary
            using var restored = new DataParallelRank(spec, Data, 0, 1, collective, GradientCombine.Average);
            restored.RestoreState(original.CaptureState());
            for (int s = 0; s < 20; s++)
            {
                await original.TrainStep();
                await restored.TrainStep();
            }
            return (Flatten(original.Model), Flatten(restored.Model), original.TrainingEpoch, restored.Step);
        });

        Assert.Equal(results[0].Item1, results[0].Item2);
        Assert.Equal(1, results[0].TrainingEpoch);
        Assert.Equal(160, results[0].Step);
    }
}

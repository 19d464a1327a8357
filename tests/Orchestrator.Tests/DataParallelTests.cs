using Orchestrator.Core.Collectives;
using Orchestrator.Core.Specs;
using Orchestrator.Tests.Infrastructure;
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
}

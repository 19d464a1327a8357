using Orchestrator.Core.Fusion;
using Orchestrator.Core.Scheduling;

namespace Orchestrator.Tests;

public class FusionPolicyTests
{
    static readonly SpecValidationOptions NoFiles = new() { CheckFiles = false };

    static JobSpec Spec(string model = "{type: mlp}", string train = "{}", string extra = "") =>
        JobSpecParser.Parse($"name: j\nmodel: {model}\ndata: {{dataset: fashion-mnist}}\ntrain: {train}\n{extra}", NoFiles);

    static PendingJob Job(string id, string? key, int priority = 0, long seq = 0, long memory = 0) => new(id, priority, seq, 1, key, memory);

    static NodeCapacity Node(string id, int free, long memory = long.MaxValue) =>
        new(id, Enumerable.Range(0, free).Select(i => $"cpu:{i}").ToList(), memory);

    [Fact]
    public void FusionKey_IgnoresHyperparameterValues_ButNotShapesOrOptimizer()
    {
        var baseKey = FusionPlanning.Key(Spec(train: "{lr: 0.1, seed: 1, epochs: 2}"));

        Assert.Equal(baseKey, FusionPlanning.Key(Spec(train: "{lr: 0.5, seed: 9, epochs: 7, momentum: 0.5, weightDecay: 0.01}")));
        Assert.NotEqual(baseKey, FusionPlanning.Key(Spec(train: "{batchSize: 32}")));
        Assert.NotEqual(baseKey, FusionPlanning.Key(Spec(train: "{optimizer: adam}")));
        Assert.NotEqual(baseKey, FusionPlanning.Key(Spec(model: "{type: mlp, hidden: [256, 64]}")));
        Assert.NotEqual(baseKey, FusionPlanning.Key(Spec(model: "{type: cnn}")));
        Assert.Null(FusionPlanning.Key(Spec(extra: "fusion: never")));
    }

    [Fact]
    public void MemoryEstimate_GrowsWithModelBatchAndOptimizerState()
    {
        var small = FusionPlanning.EstimateMemberBytes(Spec());

        Assert.True(FusionPlanning.EstimateMemberBytes(Spec(model: "{type: mlp, hidden: [1024, 512]}")) > small);
        Assert.True(FusionPlanning.EstimateMemberBytes(Spec(train: "{batchSize: 512}")) > small);
        Assert.True(FusionPlanning.EstimateMemberBytes(Spec(train: "{optimizer: adam}")) > small);
        // 784-256-128-10 has 235,146 parameters: weights, gradients and SGD momentum alone are 2.8 MB.
        Assert.Equal(235_146, FusionPlanning.ParameterCount(Spec().Model));
        Assert.True(small > 235_146L * 4 * 3);
    }

    [Fact]
    public void CompatibleJobs_ArePackedOntoOneDevice_UpToTheWidth()
    {
        var policy = new PriorityBestFitPolicy(maxArrayWidth: 3);
        var queue = Enumerable.Range(0, 7).Select(i => Job($"j{i}", "k", seq: i)).ToList();

        var placed = policy.Place(queue, [Node("n", 4)]);

        Assert.Equal([3, 3, 1], placed.Select(p => p.JobIds.Count).ToArray());
        Assert.Equal(3, placed.Select(p => p.Devices[0]).Distinct().Count());
        Assert.Equal(["j0", "j1", "j2"], placed[0].JobIds.ToArray());
    }

    [Fact]
    public void DifferentKeys_NeverShareAnArray()
    {
        var policy = new PriorityBestFitPolicy(8);
        var queue = new[] { Job("a1", "A", seq: 1), Job("b1", "B", seq: 2), Job("a2", "A", seq: 3), Job("b2", "B", seq: 4) };

        var placed = policy.Place(queue, [Node("n", 2)]);

        Assert.Equal(2, placed.Count);
        Assert.Contains(placed, p => p.JobIds.SequenceEqual(["a1", "a2"]));
        Assert.Contains(placed, p => p.JobIds.SequenceEqual(["b1", "b2"]));
    }

    [Fact]
    public void DeviceMemory_BoundsTheWidth()
    {
        var policy = new PriorityBestFitPolicy(16);
        var queue = Enumerable.Range(0, 10).Select(i => Job($"j{i}", "k", seq: i, memory: 300)).ToList();

        var placed = policy.Place(queue, [Node("n", 1, memory: 1000)]);

        Assert.Equal(3, Assert.Single(placed).JobIds.Count);
    }

    [Fact]
    public void JobLargerThanEveryDevice_IsNotPlaced()
    {
        var placed = new PriorityBestFitPolicy(8).Place([Job("huge", "k", memory: 5000)], [Node("n", 2, memory: 1000)]);

        Assert.Empty(placed);
    }

    [Fact]
    public void OptedOutJobs_RunAlone()
    {
        var queue = new[] { Job("alone", null, seq: 1), Job("f1", "k", seq: 2), Job("alone2", null, seq: 3), Job("f2", "k", seq: 4) };

        var placed = new PriorityBestFitPolicy(8).Place(queue, [Node("n", 3)]);

        Assert.Equal(["alone", "alone2", "f1,f2"], placed.Select(p => string.Join(",", p.JobIds)).Order().ToArray());
    }

    [Fact]
    public void Priority_DecidesWhoGetsDevicesAndWhoLeadsArrays()
    {
        var queue = new[]
        {
            Job("low-a", "A", priority: 0, seq: 1), Job("low-b", "B", priority: 0, seq: 2),
            Job("high-b", "B", priority: 5, seq: 3), Job("mid-a", "A", priority: 2, seq: 4),
        };

        var placed = new PriorityBestFitPolicy(maxArrayWidth: 2).Place(queue, [Node("n", 1)]);

        // One device: the highest-priority job leads, with its best compatible follower.
        Assert.Equal(["high-b", "low-b"], Assert.Single(placed).JobIds.ToArray());
    }
}

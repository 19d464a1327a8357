using Orchestrator.Worker.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Tests;

/// <summary>HFTA's properties: a fused array trains each member exactly as it would train alone, and a member that
/// leaves (diverged, cancelled, finished) does not disturb the others.</summary>
[Collection("torch")]
public class FusionTests
{
    static FashionMnist Data => FashionMnist.Load(FashionMnistFiles.DefaultPath);

    static JobSpec Spec(string model, string optimizer, double lr, int seed, string extra = "") => JobSpecParser.Parse(
        $"name: m{seed}\nmodel: {model}\ndata: {{dataset: fashion-mnist, trainLimit: 4096}}\ntrain: {{optimizer: {optimizer}, lr: {lr}, seed: {seed}, batchSize: 16{extra}}}");

    const string Mlp = "{type: mlp, hidden: [64, 32]}";
    const string Cnn = "{type: cnn, channels: [4, 8], fc: 16}";

    public static TheoryData<string, string, double[]> Cases() => new()
    {
        { Mlp, "sgd", [0.01, 0.05, 0.1, 0.2] },
        { Mlp, "adam", [0.0005, 0.001, 0.002, 0.004] },
        { Cnn, "sgd", [0.01, 0.03, 0.05, 0.1] },
        { Cnn, "adam", [0.0005, 0.001, 0.002, 0.003] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void FusedArray_EqualsTrainingEachMemberAlone(string model, string optimizer, double[] lrs)
    {
        var specs = lrs.Select((lr, i) => Spec(model, optimizer, lr, seed: 11 + i)).ToList();
        using var fused = new ArrayTrainer(specs, Data);
        for (int s = 0; s < 50; s++) fused.Step();

        for (int k = 0; k < specs.Count; k++)
        {
            using var alone = new ArrayTrainer([specs[k]], Data);
            for (int s = 0; s < 50; s++) alone.Step();
            for (int p = 0; p < alone.Model.Parameters.Count; p++)
            {
                var difference = Compare.Relative(fused.Model.Parameters[p].Value[k], alone.Model.Parameters[p].Value[0]);
                Assert.True(difference <= 1e-4, $"member {k} ({optimizer}, lr {lrs[k]}) {alone.Model.Parameters[p].Name}: {difference:E2}");
            }
        }
    }

    [Fact]
    public void DivergingMember_IsRemoved_AndTheOthersMatchARunWithoutIt()
    {
        var healthy = new[] { 0.01, 0.05, 0.1 }.Select((lr, i) => Spec(Mlp, "sgd", lr, seed: 21 + i)).ToList();
        // Above the spec's validated range (0, 10]: built directly, as a worker could receive a diverging member.
        var probe = Spec(Mlp, "sgd", 1, seed: 99);
        var diverging = probe with { Train = probe.Train with { Lr = 1e6 } };
        using var withIt = new ArrayTrainer([healthy[0], diverging, healthy[1], healthy[2]], Data, ["a", "bad", "b", "c"]);
        using var without = new ArrayTrainer(healthy, Data, ["a", "b", "c"]);
        var removedAt = -1;

        for (int s = 0; s < 40; s++)
        {
            var losses = withIt.Step();
            without.Step();
            var bad = withIt.Members.Select((m, k) => (m.Id, Loss: losses[k])).Where(x => !float.IsFinite(x.Loss)).Select(x => x.Id).ToList();
            if (bad.Count > 0) removedAt = s;
            withIt.Remove(bad);
        }

        Assert.True(removedAt >= 0, "a member with lr 1e6 should have produced a non-finite loss");
        Assert.Equal(["a", "b", "c"], withIt.Members.Select(m => m.Id).ToArray());
        AssertMembersMatch(withIt, without, 1e-6);
    }

    [Fact]
    public void CancelledMember_LeavesAtTheNextStep_AndTheOthersMatchARunWithoutIt()
    {
        var specs = new[] { 0.02, 0.04, 0.08 }.Select((lr, i) => Spec(Cnn, "adam", lr / 20, seed: 31 + i)).ToList();
        var cancelled = Spec(Cnn, "adam", 0.001, seed: 77);
        using var withIt = new ArrayTrainer([cancelled, .. specs], Data, ["x", "a", "b", "c"]);
        using var without = new ArrayTrainer(specs, Data, ["a", "b", "c"]);

        for (int s = 0; s < 30; s++)
        {
            if (s == 12) withIt.Remove(["x"]);
            withIt.Step();
            without.Step();
        }

        AssertMembersMatch(withIt, without, 1e-6);
    }

    [Fact]
    public void MemberThatFinishesEarly_LeavesWithItsOwnResult_AndTheOthersGoOn()
    {
        var longer = new[] { 0.03, 0.06 }.Select((lr, i) => Spec(Mlp, "sgd", lr, seed: 41 + i, extra: ", steps: 40")).ToList();
        var shortJob = Spec(Mlp, "sgd", 0.05, seed: 55, extra: ", steps: 15");
        using var withIt = new ArrayTrainer([longer[0], shortJob, longer[1]], Data, ["a", "short", "b"]);
        using var without = new ArrayTrainer(longer, Data, ["a", "b"]);
        using var shortAlone = new ArrayTrainer([shortJob], Data);
        for (int s = 0; s < 15; s++) shortAlone.Step();
        float[]? shortWeights = null;

        while (withIt.Members.Any(m => !m.Done))
        {
            withIt.Step();
            without.Step();
            var done = withIt.Members.Where(m => m.Done && m.Id == "short").ToList();
            if (done.Count > 0)
            {
                shortWeights = withIt.Model.Parameters[0].Value[withIt.Members.ToList().IndexOf(done[0])].data<float>().ToArray();
                withIt.Remove(["short"]);
            }
        }

        Assert.Equal(15, shortAlone.Members[0].Step);
        Assert.True(Compare.Relative(tensor(shortWeights!), shortAlone.Model.Parameters[0].Value[0].flatten()) <= 1e-4);
        Assert.All(withIt.Members, m => Assert.Equal(40, m.Step));
        AssertMembersMatch(withIt, without, 1e-6);
    }

    [Fact]
    public void MemberCheckpoint_RestoresIntoAnotherSlotOfAnotherWidth()
    {
        var specs = new[] { 0.01, 0.02, 0.03 }.Select((lr, i) => Spec(Mlp, "adam", lr / 10, seed: 61 + i)).ToList();
        using var array = new ArrayTrainer(specs, Data);
        for (int s = 0; s < 10; s++) array.Step();
        var checkpoint = array.Checkpoint(2);

        using var alone = new ArrayTrainer([specs[2]], Data);
        alone.Restore(0, checkpoint);
        for (int s = 0; s < 10; s++) { array.Step(); alone.Step(); }

        for (int p = 0; p < alone.Model.Parameters.Count; p++)
            Assert.True(Compare.Relative(array.Model.Parameters[p].Value[2], alone.Model.Parameters[p].Value[0]) <= 1e-5);
    }

    [Fact]
    public void MembersWithDifferentFusionKeys_AreRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => new ArrayTrainer([Spec(Mlp, "sgd", 0.1, 1), Spec(Mlp, "adam", 0.001, 2)], Data));

        Assert.Contains("fusion key", e.Message);
    }

    static void AssertMembersMatch(ArrayTrainer actual, ArrayTrainer expected, double tolerance)
    {
        Assert.Equal(expected.Members.Select(m => m.Id), actual.Members.Select(m => m.Id));
        for (int p = 0; p < expected.Model.Parameters.Count; p++)
        {
            var a = actual.Model.Parameters[p].Value;
            Assert.True(isfinite(a).all().item<bool>(), $"{actual.Model.Parameters[p].Name} has non-finite values");
            var difference = Compare.Relative(a, expected.Model.Parameters[p].Value);
            Assert.True(difference <= tolerance, $"{expected.Model.Parameters[p].Name}: {difference:E2}");
        }
    }
}

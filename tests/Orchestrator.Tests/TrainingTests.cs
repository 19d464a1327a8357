using System.IO.Compression;
using Orchestrator.Worker.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Tests;

/// <summary>TorchSharp loads on this machine, and the array trainer matches TorchSharp's own layers and optimizers.</summary>
[Collection("torch")]
public class TrainingTests
{
    static JobSpec Spec(string model, string train) =>
        JobSpecParser.Parse($"name: t\nmodel: {model}\ndata: {{dataset: fashion-mnist, trainLimit: 2048}}\ntrain: {train}");

    static FashionMnist Data => FashionMnist.Load(FashionMnistFiles.DefaultPath);

    [Fact]
    public void TorchSharp_LoadsAndComputes()
    {
        using var a = tensor(new float[] { 1, 2, 3, 4 }, [1, 2, 2]);
        using var b = bmm(a, a);

        Assert.Equal([7f, 10f, 15f, 22f], b.data<float>().ToArray());
        Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "runtimes/linux-x64/native/libLibTorchSharp.so")));
    }

    [Fact]
    public void FashionMnist_LoadsTheRealDataSet()
    {
        var data = Data;

        Assert.Equal(60_000, data.TrainCount);
        Assert.Equal(10_000, data.TestCount);
        Assert.Equal(60_000 * 784, data.TrainImages.Length);
        Assert.Equal(10, data.TrainLabels.Distinct().Count());
    }

    [Theory]
    [InlineData(0x0803, "magic")]
    [InlineData(0x0801, "truncated")]
    public void IdxFile_WithWrongMagicOrTruncated_IsRefusedClearly(int magic, string expected)
    {
        var dir = Directory.CreateTempSubdirectory("idx").FullName;
        foreach (var f in FashionMnistFiles.All) File.Copy(Path.Combine(FashionMnistFiles.DefaultPath, f), Path.Combine(dir, f));
        using (var gz = new GZipStream(File.Create(Path.Combine(dir, FashionMnistFiles.TrainLabels)), CompressionLevel.Fastest))
        {
            gz.Write([.. BitConverter.GetBytes(magic).Reverse(), 0, 0, 0, 100, 1, 2, 3]);
        }

        var e = Assert.ThrowsAny<InvalidDataException>(() => FashionMnist.Load(dir));

        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("sgd", "{optimizer: sgd, lr: 0.1, momentum: 0.9, weightDecay: 0.001, batchSize: 32, seed: 3}")]
    [InlineData("adam", "{optimizer: adam, lr: 0.002, weightDecay: 0.001, batchSize: 32, seed: 3}")]
    public void WidthOneArray_MatchesTorchSharpLinearAndOptimizer(string name, string train)
    {
        var spec = Spec("{type: mlp, hidden: [64, 32]}", train);
        using var trainer = new ArrayTrainer([spec], Data);
        var reference = nn.Sequential(
            ("0", nn.Linear(784, 64)), ("1", nn.ReLU()), ("2", nn.Linear(64, 32)), ("3", nn.ReLU()), ("4", nn.Linear(32, 10)));
        var refParams = reference.parameters().ToList();
        using (no_grad())
        {
            for (int i = 0; i < refParams.Count; i++)
            {
                var mine = trainer.Model.Parameters[i].Value[0];
                refParams[i].copy_(i % 2 == 0 ? mine.t() : mine.squeeze(0));
            }
        }
        optim.Optimizer optimizer = name == "sgd"
            ? optim.SGD(refParams, 0.1, momentum: 0.9, weight_decay: 0.001)
            : optim.Adam(refParams, 0.002, weight_decay: 0.001);
        var order = FashionMnist.TrainingEpochOrder(2048, 3, 0);
        var x = new float[32 * 784];

        for (int step = 0; step < 30; step++)
        {
            trainer.Step();
            using var scope = NewDisposeScope();
            var batch = order.AsSpan(step * 32, 32);
            FashionMnist.Gather(Data.TrainImages, batch, x);
            var labels = tensor(batch.ToArray().Select(i => (long)Data.TrainLabels[i]).ToArray());
            optimizer.zero_grad();
            nn.functional.cross_entropy(reference.forward(tensor(x, [32, 784])), labels).backward();
            optimizer.step();
        }

        for (int i = 0; i < refParams.Count; i++)
        {
            var mine = trainer.Model.Parameters[i].Value[0];
            var theirs = i % 2 == 0 ? refParams[i].t() : refParams[i].unsqueeze(0);
            Assert.True(Compare.Relative(mine, theirs) < 1e-4, $"{name}: parameter {trainer.Model.Parameters[i].Name} differs by {Compare.Relative(mine, theirs):E2}");
        }
    }

    [Theory]
    [InlineData("{type: mlp, hidden: [32]}", "{optimizer: sgd, lr: 0.05, batchSize: 16, seed: 5}")]
    [InlineData("{type: cnn, channels: [4, 8], fc: 16}", "{optimizer: adam, lr: 0.001, batchSize: 16, seed: 5}")]
    public void ResumingFromACheckpoint_EqualsTrainingWithoutInterruption(string model, string train)
    {
        var spec = Spec(model, train);
        using var straight = new ArrayTrainer([spec], Data);
        byte[]? checkpoint = null;
        for (int s = 0; s < 40; s++)
        {
            if (s == 25) checkpoint = straight.Checkpoint(0);
            straight.Step();
        }

        using var resumed = new ArrayTrainer([spec], Data);
        resumed.Restore(0, checkpoint!);
        Assert.Equal(25, resumed.Members[0].Step);
        while (resumed.Members[0].Step < 40) resumed.Step();

        for (int i = 0; i < straight.Model.Parameters.Count; i++)
            Assert.Equal(straight.Model.Parameters[i].Value.data<float>().ToArray(), resumed.Model.Parameters[i].Value.data<float>().ToArray());
    }

    [Fact]
    public void CheckpointOfAnotherModel_IsRefused()
    {
        using var a = new ArrayTrainer([Spec("{type: mlp, hidden: [32]}", "{}")], Data);
        using var b = new ArrayTrainer([Spec("{type: mlp, hidden: [48]}", "{}")], Data);

        var e = Assert.Throws<InvalidDataException>(() => b.Restore(0, a.Checkpoint(0)));

        Assert.Contains("shape", e.Message);
    }

    [Fact]
    public void TrainingSteps_LeaveNoTensorsBehind()
    {
        using var trainer = new ArrayTrainer([Spec("{type: cnn, channels: [4, 8], fc: 16}", "{batchSize: 16}")], Data);
        trainer.Step();
        trainer.Evaluate();
        var live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;

        for (int i = 0; i < 50; i++) trainer.Step();
        trainer.Evaluate();

        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void ShortTraining_BeatsChanceClearly()
    {
        using var trainer = new ArrayTrainer([Spec("{type: mlp, hidden: [64]}", "{lr: 0.02, batchSize: 32, epochs: 3}")], Data);

        while (!trainer.Members[0].Done) trainer.Step();

        var accuracy = trainer.Evaluate()[0];
        Assert.True(accuracy > 0.6, $"three epochs over 2048 images should reach well above 10% accuracy, got {accuracy}");
    }
}

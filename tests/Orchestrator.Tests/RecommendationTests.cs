using Orchestrator.Core.Recommendation;
using Orchestrator.Worker.Training;

namespace Orchestrator.Tests;

/// <summary>Criteo-format data, the synthetic generator, click metrics, embedding layout and a DLRM that learns.</summary>
[Collection("torch")]
public class RecommendationTests
{
    static readonly int[] Tables = Enumerable.Repeat(2000, CriteoFormat.CategoricalFeatures).ToArray();

    [Fact]
    public void ALine_IsParsedWithMissingValuesAndTheLogTransform()
    {
        var fields = new[] { "1", "0", "", "7", "-2" }.Concat(Enumerable.Repeat("3", 9)).Concat(["68fd1e64", ""]).Concat(Enumerable.Repeat("a", 24));

        var e = CriteoFormat.Parse(string.Join('\t', fields), Tables);

        Assert.Equal(1f, e.Label);
        Assert.Equal([0f, 0f, MathF.Log(8), 0f], e.Dense[..4]);
        Assert.Equal(CriteoFormat.HashCategory(0, "68fd1e64", 2000), e.Categories[0]);
        Assert.Equal(CriteoFormat.HashCategory(1, "", 2000), e.Categories[1]);
        Assert.All(e.Categories, c => Assert.InRange(c, 0, 1999));
    }

    [Theory]
    [InlineData("1\t2\t3", "3 tab-separated fields")]
    [InlineData("label-x", "label")]
    public void AMalformedLine_NamesItsLineAndTheProblem(string line, string expected)
    {
        var text = line == "label-x" ? "2" + new string('\t', CriteoFormat.Columns - 1) : line;

        var e = Assert.Throws<InvalidDataException>(() => CriteoFormat.Parse(text, Tables, "day_0", 42));

        Assert.Contains("day_0:42", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void GeneratedFiles_AreValidCriteo_Deterministic_AndGzipWorks()
    {
        var dir = Directory.CreateTempSubdirectory("criteo").FullName;
        CriteoSynth.Write(Path.Combine(dir, "a.tsv"), 2000, seed: 4);
        CriteoSynth.Write(Path.Combine(dir, "b.tsv.gz"), 2000, seed: 4);

        var plain = CriteoFormat.Read(Path.Combine(dir, "a.tsv"), Tables).ToList();
        var gzip = CriteoFormat.Read(Path.Combine(dir, "b.tsv.gz"), Tables).ToList();

        Assert.Equal(2000, plain.Count);
        Assert.Equal(plain.Select(e => (e.Label, string.Join(",", e.Categories))), gzip.Select(e => (e.Label, string.Join(",", e.Categories))));
        Assert.InRange(plain.Average(e => e.Label), 0.2, 0.3);
    }

    [Fact]
    public void Auc_CountsPairsOrderedRight_WithTiesAsHalf()
    {
        Assert.Equal(1.0, ClickMetrics.Auc([(0.1f, 0), (0.9f, 1)]));
        Assert.Equal(0.0, ClickMetrics.Auc([(0.9f, 0), (0.1f, 1)]));
        Assert.Equal(0.5, ClickMetrics.Auc([(0.5f, 0), (0.5f, 1)]));
        Assert.Equal(0.75, ClickMetrics.Auc([(0.1f, 0), (0.4f, 1), (0.5f, 0), (0.8f, 1)]));
    }

    [Fact]
    public void ACursor_ReadsAnyRange_ForwardOrBack_AsTheWholeStreamWouldGiveIt()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("criteo").FullName, "c.tsv");
        CriteoSynth.Write(path, 50, seed: 5);
        var all = CriteoFormat.Read(path, Tables).ToList();
        using var cursor = new CriteoCursor(path, Tables);

        foreach (var (start, count) in new[] { (5, 10), (15, 3), (2, 4), (48, 10) })
        {
            var read = cursor.Read(start, count);
            Assert.Equal(all.Skip(start).Take(count).Select(e => e.Categories), read.Select(e => e.Categories));
        }
    }

    [Theory]
    [InlineData(3, false)]
    [InlineData(40, true)]
    public void MalformedLines_AreCountedAndSkipped_UntilTooManyFailTheRead(int bad, bool fails)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("criteo").FullName, "c.tsv");
        CriteoSynth.Write(path, 1000, seed: 5);
        var lines = File.ReadAllLines(path).ToList();
        for (int i = 0; i < bad; i++) lines[10 + i * 20] = "2\tnot\ta\tclick";
        File.WriteAllLines(path, lines);
        using var cursor = new CriteoCursor(path, Tables);

        if (fails)
        {
            var e = Assert.Throws<InvalidDataException>(() => cursor.Read(0, 1000));
            Assert.Contains("malformed lines", e.Message);
            Assert.Contains(":11:", e.Message); // the first bad line, by number
            return;
        }
        var read = cursor.Read(0, 1000);
        Assert.Equal(1000 - bad, read.Count);
        Assert.Equal(bad, cursor.Skipped);
        Assert.Contains("tab-separated fields", cursor.FirstProblem);
    }

    [Fact]
    public void Layout_StripesIdsOverShards_AndInitialRowsDependOnlyOnSeedAndId()
    {
        var layout = new EmbeddingLayout([3, 5], dim: 4, shards: 3);

        Assert.Equal(8, layout.TotalRows);
        Assert.Equal(3, layout.RowsPerShard);
        Assert.Equal(4, layout.Id(1, 1));
        Assert.Equal((1, 1), (layout.ShardOf(4), layout.LocalRow(4)));
        Assert.Equal(4, layout.IdOf(1, 1));
        Assert.Equal(AdagradRows.Initial(7, 4, 4), AdagradRows.Initial(7, 4, 4));
        Assert.NotEqual(AdagradRows.Initial(7, 4, 4), AdagradRows.Initial(7, 5, 4));
    }

    [Fact]
    public async Task Dlrm_LearnsTheTeacher_WellAboveTheBaseRate()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("criteo").FullName, "train.tsv");
        CriteoSynth.Write(path, 40_000, seed: 1);
        var examples = CriteoFormat.Read(path, Tables).ToList();
        var (train, test) = (examples[..35_000], examples[35_000..]);
        var layout = new EmbeddingLayout(Tables, dim: 16, shards: 4);
        var shape = new DlrmShape(16, Tables, [64], [64]);
        using var dlrm = new DlrmTrainer(shape, layout, new LocalEmbeddingStore(layout, seed: 3, lr: 0.05f), seed: 3, lr: 0.002);

        var before = await dlrm.Evaluate(test);
        for (int start = 0; start + 128 <= train.Count; start += 128) await dlrm.TrainStep(train[start..(start + 128)]);
        var after = await dlrm.Evaluate(test);
        var rate = test.Average(e => e.Label);
        var baseLogLoss = -(rate * Math.Log(rate) + (1 - rate) * Math.Log(1 - rate));
        Console.WriteLine($"DLRM: base rate {rate:F4} (log loss {baseLogLoss:F4}); before AUC {before.Auc:F4}; after AUC {after.Auc:F4}, log loss {after.LogLoss:F4}, accuracy {after.Accuracy:F4}");

        Assert.True(after.Auc > 0.75, $"AUC {after.Auc:F4}");
        Assert.True(after.LogLoss < baseLogLoss - 0.08, $"log loss {after.LogLoss:F4} vs the base rate's {baseLogLoss:F4}");
        Assert.True(after.Accuracy > Math.Max(rate, 1 - rate), $"accuracy {after.Accuracy:F4}");
    }
}

namespace Orchestrator.Tests;

public class SpecValidationTests
{
    const string Valid = """
        name: fmnist-mlp
        owner: vision
        priority: 2
        model:
          type: mlp
          hidden: [256, 128]
        data:
          dataset: fashion-mnist
        train:
          epochs: 3
          batchSize: 32
          optimizer: sgd
          lr: 0.1
          momentum: 0.9
          seed: 7
        """;

    static readonly SpecValidationOptions NoFiles = new() { CheckFiles = false };

    [Fact]
    public void ValidYaml_ParsesAllFieldsAndDefaults()
    {
        var spec = JobSpecParser.Parse(Valid, NoFiles);

        Assert.Equal("fmnist-mlp", spec.Name);
        Assert.Equal(2, spec.Priority);
        Assert.Equal([256, 128], spec.Model.Hidden);
        Assert.Equal(3, spec.Train.Epochs);
        Assert.Equal(0.1, spec.Train.Lr);
        Assert.Equal(7, spec.Train.Seed);
        Assert.Equal(FashionMnistFiles.DefaultPath, spec.Data.Path);
        Assert.Equal(1, spec.Resources.Devices);
        Assert.Equal(500, spec.Train.CheckpointEvery);
    }

    [Fact]
    public void CanonicalJson_RoundTripsToAnEqualSpec()
    {
        var spec = JobSpecParser.Parse(Valid, NoFiles);

        var again = JobSpecParser.Parse(JobSpecJson.Write(spec), NoFiles);

        Assert.Equal(spec, again);
    }

    [Fact]
    public void DataParallelSpec_ParsesWorkersAndCombine_AndRoundTrips()
    {
        var spec = JobSpecParser.Parse("name: big\nkind: data-parallel\nworkers: {min: 2, max: 8}\ngradients: average\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}", NoFiles);

        Assert.Equal(JobKind.DataParallel, spec.Kind);
        Assert.Equal(new DataParallelSpec(2, 8, Orchestrator.Core.Collectives.GradientCombine.Average), spec.DataParallel);
        Assert.Equal(spec, JobSpecParser.Parse(JobSpecJson.Write(spec), NoFiles));
        Assert.Equal(Orchestrator.Core.Collectives.GradientCombine.Adasum,
            JobSpecParser.Parse("name: b\nkind: data-parallel\nworkers: {min: 2}\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}", NoFiles).DataParallel!.Gradients);
    }

    [Fact]
    public void Json_IsAcceptedLikeYaml()
    {
        var json = """{"name":"j1","model":{"type":"cnn","channels":[8,16],"fc":32},"data":{"dataset":"fashion-mnist"},"train":{"steps":100,"optimizer":"adam","lr":0.002}}""";

        var spec = JobSpecParser.Parse(json, NoFiles);

        Assert.Equal(ModelType.Cnn, spec.Model.Type);
        Assert.Equal([8, 16], spec.Model.Channels);
        Assert.Equal(100, spec.Train.Steps);
        Assert.Equal(OptimizerKind.Adam, spec.Train.Optimizer);
    }

    public static TheoryData<string, string, string> BadSpecs() => new()
    {
        // description, spec (YAML or JSON), field the error must name
        { "missing name", "model: {type: mlp}\ndata: {dataset: fashion-mnist}", "name" },
        { "name with capitals", "name: MyJob\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}", "name" },
        { "unknown top-level field", "name: a\nmodle: {type: mlp}\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}", "modle" },
        { "unknown nested field", "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\ntrain: {learningRate: 0.1}", "train.learningRate" },
        { "unsupported kind", "name: a\nkind: batch\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}", "kind" },
        { "data-parallel without workers", "name: a\nkind: data-parallel\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}", "workers" },
        { "data-parallel max below min", "name: a\nkind: data-parallel\nworkers: {min: 4, max: 2}\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}", "workers.max" },
        { "data-parallel unknown combine", "name: a\nkind: data-parallel\nworkers: {min: 2}\ngradients: median\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}", "gradients" },
        { "single job with workers", "name: a\nworkers: {min: 2}\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}", "workers" },
        { "missing model", "name: a\ndata: {dataset: fashion-mnist}", "model" },
        { "unknown model type", "name: a\nmodel: {type: transformer}\ndata: {dataset: fashion-mnist}", "model.type" },
        { "hidden not a list", "name: a\nmodel: {type: mlp, hidden: 256}\ndata: {dataset: fashion-mnist}", "model.hidden" },
        { "hidden entry zero", "name: a\nmodel: {type: mlp, hidden: [256, 0]}\ndata: {dataset: fashion-mnist}", "model.hidden[1]" },
        { "hidden entry a string", "name: a\nmodel: {type: mlp, hidden: [256, \"wide\"]}\ndata: {dataset: fashion-mnist}", "model.hidden[1]" },
        { "cnn with one channel count", "name: a\nmodel: {type: cnn, channels: [32]}\ndata: {dataset: fashion-mnist}", "model.channels" },
        { "mlp given channels", "name: a\nmodel: {type: mlp, channels: [4, 8]}\ndata: {dataset: fashion-mnist}", "model.channels" },
        { "unknown dataset", "name: a\nmodel: {type: mlp}\ndata: {dataset: imagenet}", "data.dataset" },
        { "negative train limit", "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist, trainLimit: -5}", "data.trainLimit" },
        { "lr a string", "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\ntrain: {lr: fast}", "train.lr" },
        { "lr zero", "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\ntrain: {lr: 0}", "train.lr" },
        { "lr infinite", "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\ntrain: {lr: .inf}", "train.lr" },
        { "momentum 1", "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\ntrain: {momentum: 1}", "train.momentum" },
        { "epochs and steps", "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\ntrain: {epochs: 2, steps: 100}", "train.steps" },
        { "epochs fractional", "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\ntrain: {epochs: 2.5}", "train.epochs" },
        { "batch size huge", "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\ntrain: {batchSize: 100000000000}", "train.batchSize" },
        { "unknown optimizer", "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\ntrain: {optimizer: rmsprop}", "train.optimizer" },
        { "adam with momentum", "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\ntrain: {optimizer: adam, momentum: 0.9}", "train.momentum" },
        { "sgd with beta1", "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\ntrain: {optimizer: sgd, beta1: 0.8}", "train.beta1" },
        { "priority out of range", "name: a\npriority: 5000\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}", "priority" },
        { "single job on 2 devices", "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\nresources: {devices: 2}", "resources.devices" },
        { "section not a map", "name: a\nmodel: mlp\ndata: {dataset: fashion-mnist}", "model" },
        { "json wrong type", """{"name":"a","model":{"type":"mlp"},"data":{"dataset":"fashion-mnist"},"train":{"seed":"seven"}}""", "train.seed" },
        { "document a list", "- name: a", "(document)" },
        { "yaml syntax error", "name: a\nmodel: {type: mlp\ndata: x", "(document)" },
    };

    [Theory]
    [MemberData(nameof(BadSpecs))]
    public void BadSpec_IsRefusedNamingTheField(string description, string text, string field)
    {
        var e = Assert.Throws<SpecValidationException>(() => JobSpecParser.Parse(text, NoFiles));

        Assert.True(e.Errors.Any(err => err.Field == field),
            $"{description}: expected an error for '{field}', got: {string.Join("; ", e.Errors)}");
        Assert.All(e.Errors, err => Assert.False(string.IsNullOrWhiteSpace(err.Message)));
    }

    [Theory]
    [InlineData("lrate", "lr")]
    [InlineData("batch_size", "batchSize")]
    [InlineData("epoch", "epochs")]
    [InlineData("momentun", "momentum")]
    public void MisspelledField_GetsADidYouMean(string written, string meant)
    {
        var e = Assert.Throws<SpecValidationException>(() =>
            JobSpecParser.Parse($"name: a\nmodel: {{type: mlp}}\ndata: {{dataset: fashion-mnist}}\ntrain: {{{written}: 1}}", NoFiles));

        Assert.Contains($"did you mean '{meant}'", Assert.Single(e.Errors, x => x.Field == $"train.{written}").Message);
    }

    [Fact]
    public void MissingDatasetFolder_IsRefusedWithInstallHint()
    {
        var e = Assert.Throws<SpecValidationException>(() =>
            JobSpecParser.Parse("name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist, path: /nonexistent/fmnist}"));

        var error = Assert.Single(e.Errors);
        Assert.Equal("data.path", error.Field);
        Assert.Contains("dataset-fashion-mnist", error.Message);
    }

    [Fact]
    public void SeveralProblems_AreAllReported()
    {
        var e = Assert.Throws<SpecValidationException>(() =>
            JobSpecParser.Parse("name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\ntrain: {lr: -1, batchSize: 0, seed: x}", NoFiles));

        Assert.Equal(["train.batchSize", "train.lr", "train.seed"], e.Errors.Select(x => x.Field).Order().ToArray());
    }

    [Fact]
    public void Sweep_MakesOneJobPerValueNamedAfterIt()
    {
        var root = JobSpecParser.ParseDocument(Valid);

        var variants = SpecVariants.Expand(root, ["train.epochs=1"], ["train.lr=0.01,0.5", "train.seed=1,2"]);
        var specs = variants.Select(v => JobSpecParser.FromNode(SpecVariants.WithNameSuffix(v.Spec, v.NameSuffix), NoFiles)).ToList();

        Assert.Equal(4, specs.Count);
        Assert.Equal(["fmnist-mlp-0-01-1", "fmnist-mlp-0-01-2", "fmnist-mlp-0-5-1", "fmnist-mlp-0-5-2"], specs.Select(s => s.Name).ToArray());
        Assert.All(specs, s => Assert.Equal(1, s.Train.Epochs));
        Assert.Equal([0.01, 0.01, 0.5, 0.5], specs.Select(s => s.Train.Lr).ToArray());
    }

    [Fact]
    public void SetWithBadValue_IsReportedAtTheField()
    {
        var root = SpecVariants.Expand(JobSpecParser.ParseDocument(Valid), ["train.lr=abc"], [])[0].Spec;

        var e = Assert.Throws<SpecValidationException>(() => JobSpecParser.FromNode(root, NoFiles));

        Assert.Equal("train.lr", Assert.Single(e.Errors).Field);
    }

    [Fact]
    public void HugeDocument_IsRefusedWithoutParsing()
    {
        var text = "name: a\n# " + new string('x', SpecDocument.MaxDocumentBytes);

        var e = Assert.Throws<SpecValidationException>(() => JobSpecParser.Parse(text, NoFiles));

        Assert.Equal("(document)", Assert.Single(e.Errors).Field);
    }

    [Fact]
    public void DlrmSpec_ParsesWithDefaults_AndRoundTripsThroughCanonicalJson()
    {
        var spec = JobSpecParser.Parse("name: ctr\nmodel: {type: dlrm, dim: 8, tableRows: 500}\ndata: {dataset: criteo, path: /x.tsv}\nembedding: {faultTolerance: {k: 2, r: 2}, shards: 4}", NoFiles);

        Assert.Equal(ModelType.Dlrm, spec.Model.Type);
        Assert.Equal((8, 500), (spec.Model.Dim, spec.Model.TableRows));
        Assert.Equal([64], spec.Model.Hidden);
        Assert.Equal(10_000, spec.Data.TestExamples);
        Assert.Equal(new FaultTolerance(FaultToleranceMode.ErasureCoding, 2, 2, 0), spec.Embedding!.FaultTolerance);
        Assert.Equal(spec, JobSpecParser.Parse(JobSpecJson.Write(spec), NoFiles));
        Assert.Equal(FaultToleranceMode.None, JobSpecParser.Parse("name: a\nmodel: {type: dlrm}\ndata: {dataset: criteo, path: /x}\nembedding: {faultTolerance: none}", NoFiles).Embedding!.FaultTolerance.Mode);
        Assert.Null(Orchestrator.Core.Fusion.FusionPlanning.Key(spec));
    }

    public static TheoryData<string, string> BadDlrmSpecs() => new()
    {
        { "name: a\nmodel: {type: dlrm}\ndata: {dataset: fashion-mnist}", "data.dataset" },
        { "name: a\nmodel: {type: mlp}\ndata: {dataset: criteo, path: /x}", "data.dataset" },
        { "name: a\nmodel: {type: mlp}\ndata: {dataset: fashion-mnist}\nembedding: {lr: 0.1}", "embedding" },
        { "name: a\nmodel: {type: dlrm, hidden: [3]}\ndata: {dataset: criteo, path: /x}", "model.hidden" },
        { "name: a\nmodel: {type: dlrm}\ndata: {dataset: criteo}", "data.path" },
        { "name: a\nmodel: {type: dlrm}\ndata: {dataset: criteo, path: /x}\nembedding: {shards: 5, faultTolerance: {k: 3}}", "embedding.shards" },
        { "name: a\nmodel: {type: dlrm}\ndata: {dataset: criteo, path: /x}\nembedding: {faultTolerance: {checkpoint: 10, k: 2}}", "embedding.faultTolerance.k" },
        { "name: a\nmodel: {type: dlrm}\ndata: {dataset: criteo, path: /x}\nembedding: {faultTolerance: sometimes}", "embedding.faultTolerance" },
        { "name: a\nkind: data-parallel\nworkers: {min: 2}\nmodel: {type: dlrm}\ndata: {dataset: criteo, path: /x}\nembedding: {faultTolerance: {checkpoint: 10}}", "embedding.faultTolerance" },
    };

    [Theory, MemberData(nameof(BadDlrmSpecs))]
    public void BadDlrmSpecs_NameTheField(string yaml, string field)
    {
        var e = Assert.Throws<SpecValidationException>(() => JobSpecParser.Parse(yaml, NoFiles));

        Assert.Contains(e.Errors, x => x.Field == field);
    }

    [Fact]
    public void AMissingCriteoFile_IsReportedWithWhatToDo()
    {
        var e = Assert.Throws<SpecValidationException>(() => JobSpecParser.Parse("name: a\nmodel: {type: dlrm}\ndata: {dataset: criteo, path: /nonexistent.tsv}"));

        Assert.Contains(e.Errors, x => x.Field == "data.path" && x.Message.Contains("criteo-synth"));
    }

    [Fact]
    public void ExampleSpecs_AreValid()
    {
        foreach (var file in Directory.GetFiles(Path.Combine(Repo.Root, "examples"), "*.yaml"))
            JobSpecParser.Parse(File.ReadAllText(file), NoFiles);
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;

namespace Orchestrator.Core.Specs;

/// <summary>
/// The canonical wire form of a spec: JSON in the same schema users write, with every default filled in.
/// Grains and workers receive this text and validate it again, so a spec never crosses a process unchecked.
/// </summary>
public static class JobSpecJson
{
    /// <summary>Reads and validates a spec in its wire form: a JSON object only (YAML is refused, so that no YAML
    /// parser ever sees a message a process received).</summary>
    /// <exception cref="SpecValidationException">The text is not a JSON object or not a valid spec.</exception>
    public static JobSpec Read(string? json, SpecValidationOptions? options = null)
    {
        SpecNode root;
        try { root = SpecDocument.ParseJsonObject(json ?? throw new SpecFormatException("no spec was given")); }
        catch (SpecFormatException e) { throw new SpecValidationException([new SpecError("(document)", e.Message)]); }
        return JobSpecParser.FromNode(root, options);
    }

    public static string Write(JobSpec s)
    {
        var train = new JsonObject
        {
            ["batchSize"] = s.Train.BatchSize,
            ["optimizer"] = s.Train.Optimizer.ToString().ToLowerInvariant(),
            ["lr"] = s.Train.Lr,
            ["weightDecay"] = s.Train.WeightDecay,
            ["seed"] = s.Train.Seed,
            ["checkpointEvery"] = s.Train.CheckpointEvery,
        };
        if (s.Train.Steps > 0) train["steps"] = s.Train.Steps; else train["epochs"] = s.Train.Epochs;
        if (s.Train.Optimizer == OptimizerKind.Sgd) train["momentum"] = s.Train.Momentum;
        else { train["beta1"] = s.Train.Beta1; train["beta2"] = s.Train.Beta2; train["eps"] = s.Train.Eps; }

        var model = new JsonObject { ["type"] = s.Model.Type.ToString().ToLowerInvariant() };
        static JsonArray Ints(IEnumerable<int> values) => new(values.Select(h => (JsonNode)h).ToArray());
        switch (s.Model.Type)
        {
            case ModelType.Mlp:
                model["hidden"] = Ints(s.Model.Hidden);
                break;
            case ModelType.Cnn:
                model["channels"] = Ints(s.Model.Channels);
                model["fc"] = s.Model.FcHidden;
                break;
            case ModelType.Dlrm:
                model["dim"] = s.Model.Dim;
                model["bottom"] = Ints(s.Model.Hidden);
                model["top"] = Ints(s.Model.Top ?? []);
                model["tableRows"] = s.Model.TableRows;
                break;
        }
        var data = new JsonObject { ["dataset"] = s.Data.Dataset, ["path"] = s.Data.Path };
        if (s.Data.Dataset == "criteo") data["testExamples"] = s.Data.TestExamples;
        else data["trainLimit"] = s.Data.TrainLimit;

        var root = new JsonObject
        {
            ["name"] = s.Name,
            ["kind"] = s.Kind == JobKind.Single ? "single" : "data-parallel",
            ["owner"] = s.Owner,
            ["priority"] = s.Priority,
            ["model"] = model,
            ["data"] = data,
            ["train"] = train,
            ["resources"] = new JsonObject { ["devices"] = s.Resources.Devices },
            ["fusion"] = s.Fusion.ToString().ToLowerInvariant(),
        };
        if (s.DataParallel is { } dp)
        {
            root["workers"] = new JsonObject { ["min"] = dp.MinWorkers, ["max"] = dp.MaxWorkers };
            root["gradients"] = dp.Gradients.ToString().ToLowerInvariant();
        }
        if (s.Embedding is { } e)
        {
            var ft = e.FaultTolerance;
            JsonNode tolerance = ft.Mode switch
            {
                FaultToleranceMode.None => "none",
                FaultToleranceMode.Checkpoint => new JsonObject { ["checkpoint"] = ft.Interval },
                _ => ft.K > 0 ? new JsonObject { ["k"] = ft.K, ["r"] = ft.R } : new JsonObject { ["r"] = ft.R },
            };
            var embedding = new JsonObject { ["lr"] = e.Lr, ["faultTolerance"] = tolerance };
            if (e.Shards > 0) embedding["shards"] = e.Shards;
            root["embedding"] = embedding;
        }
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }
}

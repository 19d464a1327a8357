using System.Text.Json;
using System.Text.Json.Nodes;

namespace Orchestrator.Core.Specs;

/// <summary>
/// The canonical wire form of a spec: JSON in the same schema users write, with every default filled in.
/// Grains and workers receive this text and validate it again, so a spec never crosses a process unchecked.
/// </summary>
public static class JobSpecJson
{
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
        if (s.Model.Type == ModelType.Mlp) model["hidden"] = new JsonArray(s.Model.Hidden.Select(h => (JsonNode)h).ToArray());
        else { model["channels"] = new JsonArray(s.Model.Channels.Select(h => (JsonNode)h).ToArray()); model["fc"] = s.Model.FcHidden; }

        var root = new JsonObject
        {
            ["name"] = s.Name,
            ["kind"] = s.Kind == JobKind.Single ? "single" : "data-parallel",
            ["owner"] = s.Owner,
            ["priority"] = s.Priority,
            ["model"] = model,
            ["data"] = new JsonObject { ["dataset"] = s.Data.Dataset, ["path"] = s.Data.Path, ["trainLimit"] = s.Data.TrainLimit },
            ["train"] = train,
            ["resources"] = new JsonObject { ["devices"] = s.Resources.Devices },
            ["fusion"] = s.Fusion.ToString().ToLowerInvariant(),
        };
        if (s.DataParallel is { } dp)
        {
            root["workers"] = new JsonObject { ["min"] = dp.MinWorkers, ["max"] = dp.MaxWorkers };
            root["gradients"] = dp.Gradients.ToString().ToLowerInvariant();
        }
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }
}

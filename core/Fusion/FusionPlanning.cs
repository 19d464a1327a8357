using Orchestrator.Core.Specs;

namespace Orchestrator.Core.Fusion;

/// <summary>
/// Which jobs may be trained together as one horizontally fused array (HFTA), and what one member costs in
/// device memory. Jobs fuse when everything that shapes the computation is equal; hyperparameter values
/// (learning rate, momentum, weight decay, betas, seed, epochs, steps) may differ.
/// </summary>
public static class FusionPlanning
{
    const int InputPixels = 28 * 28, Classes = 10;

    /// <summary>The fusion key, or null for a job that must run alone (opted out, or data-parallel).</summary>
    public static string? Key(JobSpec spec)
    {
        if (spec.Fusion == FusionMode.Never || spec.Kind != JobKind.Single || spec.Model.Type == ModelType.Dlrm) return null;
        var model = spec.Model.Type == ModelType.Mlp
            ? $"mlp[{string.Join(",", spec.Model.Hidden)}]"
            : $"cnn[{string.Join(",", spec.Model.Channels)}]fc{spec.Model.FcHidden}";
        return $"{model}|in1x28x28|out{Classes}|batch{spec.Train.BatchSize}|{spec.Train.Optimizer.ToString().ToLowerInvariant()}|{spec.Data.Dataset}:{spec.Data.Path}";
    }

    /// <summary>Trainable parameters of one member.</summary>
    public static long ParameterCount(ModelSpec model)
    {
        if (model.Type == ModelType.Dlrm)
        {
            // The dense MLPs only: the embedding rows live in shard grains, not on the device.
            var bottom = new[] { 13 }.Concat(model.Hidden).Append(model.Dim).ToArray();
            var vectors = 27;
            var top = new[] { model.Dim + vectors * (vectors - 1) / 2 }.Concat(model.Top ?? []).Append(1).ToArray();
            return Layers(bottom) + Layers(top);
        }
        if (model.Type == ModelType.Mlp)
        {
            var sizes = new[] { InputPixels }.Concat(model.Hidden).Append(Classes).ToArray();
            return Layers(sizes);
        }
        long c1 = model.Channels[0], c2 = model.Channels[1], flat = c2 * 7 * 7;
        return (c1 * 9 + c1) + (c2 * c1 * 9 + c2) + (flat * model.FcHidden + model.FcHidden) + ((long)model.FcHidden * Classes + Classes);
    }

    static long Layers(int[] sizes) => Enumerable.Range(0, sizes.Length - 1).Sum(l => (long)sizes[l] * sizes[l + 1] + sizes[l + 1]);

    /// <summary>
    /// Device memory one member needs: parameters, gradients and optimizer state (SGD one buffer, Adam two), plus
    /// activations kept for the backward pass (float32, counted twice for their gradients), plus its input batch.
    /// </summary>
    public static long EstimateMemberBytes(JobSpec spec)
    {
        var states = spec.Train.Optimizer == OptimizerKind.Adam ? 4 : 3;
        long b = spec.Train.BatchSize;
        long activations = spec.Model.Type == ModelType.Dlrm
            ? spec.Model.Hidden.Sum(h => (long)h) * 2 + 27L * spec.Model.Dim * 2 + 27 * 27 + (spec.Model.Top ?? []).Sum(h => (long)h) * 2
            : spec.Model.Type == ModelType.Mlp
            ? spec.Model.Hidden.Sum(h => (long)h) * 2 + Classes
            : (long)spec.Model.Channels[0] * (28 * 28 * 2 + 14 * 14) + (long)spec.Model.Channels[1] * (14 * 14 * 2 + 7 * 7) + spec.Model.FcHidden * 2 + Classes;
        return 4 * (ParameterCount(spec.Model) * states + b * (activations * 2 + InputPixels));
    }
}

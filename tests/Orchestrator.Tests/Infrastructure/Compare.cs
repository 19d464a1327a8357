using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Tests.Infrastructure;

/// <summary>Relative difference: the largest absolute difference over the largest magnitude of the expected values.</summary>
public static class Compare
{
    public static double Relative(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        return (actual - expected).abs().max().item<float>() / Math.Max(1e-12, expected.abs().max().item<float>());
    }

    public static double Relative(float[] actual, double[] expected)
    {
        double worst = 0, scale = expected.Max(Math.Abs);
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        return worst / scale;
    }
}

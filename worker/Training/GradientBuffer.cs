using Orchestrator.Core.Collectives;
using static TorchSharp.torch;

namespace Orchestrator.Worker.Training;

/// <summary>Parameters' gradients to and from one flat buffer laid out by a <see cref="TensorLayout"/> (what ranks combine).</summary>
public static class GradientBuffer
{
    public static void Copy(IEnumerable<Tensor> parameters, TensorLayout layout, float[] into)
    {
        foreach (var ((offset, length), p) in layout.Tensors.Zip(parameters))
            p.grad!.data<float>().CopyTo(into.AsSpan(offset, length));
    }

    public static void Load(IEnumerable<Tensor> parameters, TensorLayout layout, float[] from)
    {
        foreach (var ((offset, length), p) in layout.Tensors.Zip(parameters))
            p.grad!.data<float>().CopyFrom(from.AsSpan(offset, length));
    }
}

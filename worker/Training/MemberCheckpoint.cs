using System.Runtime.InteropServices;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Worker.Training;

/// <summary>
/// One member's model and optimizer state, in a width-independent format: a member saved from an array of any
/// width restores into a slot of an array of any width, or alone.
/// Layout: "ORCK", version, step, optimizer steps, tensor count, then per tensor: name, rank, shape, float32 data.
/// </summary>
public static class MemberCheckpoint
{
    const int Magic = 0x4B43524F; // "ORCK"
    const int Version = 1;

    public static byte[] Capture(ArrayModel model, ArrayOptimizer optimizer, int member, long step)
    {
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms, Encoding.UTF8);
        w.Write(Magic);
        w.Write(Version);
        w.Write(step);
        w.Write(optimizer.Steps[member]);
        var tensors = NamedState(model, optimizer).ToList();
        w.Write(tensors.Count);
        using var noGrad = no_grad();
        foreach (var (name, t) in tensors)
        {
            using var slice = t[member].contiguous();
            w.Write(name);
            w.Write((int)slice.dim());
            foreach (var d in slice.shape) w.Write(d);
            var data = slice.data<float>().ToArray();
            w.Write(MemoryMarshal.AsBytes(data.AsSpan()));
        }
        return ms.ToArray();
    }

    /// <summary>Loads a member's state into slot <paramref name="member"/>; returns the step it was taken at.</summary>
    public static long Restore(byte[] bytes, ArrayModel model, ArrayOptimizer optimizer, int member)
    {
        using var r = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
        if (r.ReadInt32() != Magic) throw new InvalidDataException("not an Orchestrator checkpoint");
        var version = r.ReadInt32();
        if (version != Version) throw new InvalidDataException($"checkpoint format {version} is not supported (expected {Version})");
        var step = r.ReadInt64();
        var optimizerSteps = r.ReadInt64();
        var count = r.ReadInt32();
        var targets = NamedState(model, optimizer).ToDictionary(x => x.Name, x => x.Tensor);
        if (count != targets.Count) throw new InvalidDataException($"checkpoint has {count} tensors, the model and optimizer have {targets.Count}: different model or optimizer");
        using var noGrad = no_grad();
        for (int i = 0; i < count; i++)
        {
            var name = r.ReadString();
            var shape = new long[r.ReadInt32()];
            for (int d = 0; d < shape.Length; d++) shape[d] = r.ReadInt64();
            if (!targets.TryGetValue(name, out var target)) throw new InvalidDataException($"checkpoint tensor '{name}' does not exist in this model");
            var expected = target.shape[1..];
            if (!expected.SequenceEqual(shape)) throw new InvalidDataException($"checkpoint tensor '{name}' has shape [{string.Join(",", shape)}], the model [{string.Join(",", expected)}]");
            var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
            r.BaseStream.ReadExactly(MemoryMarshal.AsBytes(data.AsSpan()));
            using var source = tensor(data, shape);
            target[member].copy_(source);
        }
        optimizer.Steps[member] = optimizerSteps;
        return step;
    }

    static IEnumerable<(string Name, Tensor Tensor)> NamedState(ArrayModel model, ArrayOptimizer optimizer)
    {
        for (int i = 0; i < model.Parameters.Count; i++)
        {
            var (name, p) = model.Parameters[i];
            yield return (name, p);
            yield return ($"{name}.moment1", optimizer.FirstMoment[i]);
            if (optimizer.SecondMoment.Count > 0) yield return ($"{name}.moment2", optimizer.SecondMoment[i]);
        }
    }
}

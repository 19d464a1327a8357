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
        var tensors = NamedState(model, optimizer).ToList();
        // Sized up front: a growing stream would double past 2 GB for a checkpoint of a little over 1 GB.
        var size = 4 + 4 + 8 + 8 + 4 + tensors.Sum(x => PrefixedSize(x.Name) + 4 + 8L * (x.Tensor.dim() - 1) + 4 * (x.Tensor.numel() / x.Tensor.shape[0]));
        if (size > Array.MaxLength) throw new OutOfMemoryException($"the member's state is {size} bytes, more than one checkpoint holds ({Array.MaxLength})");
        using var ms = new MemoryStream((int)size);
        using var w = new BinaryWriter(ms, Encoding.UTF8);
        w.Write(Magic);
        w.Write(Version);
        w.Write(step);
        w.Write(optimizer.Steps[member]);
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
        // The stream's buffer is the checkpoint when it was sized exactly (no copy of a large state).
        return ms.Length == ms.Capacity ? ms.GetBuffer() : ms.ToArray();
    }

    /// <summary>A string as BinaryWriter writes it: its UTF-8 bytes after their count in 7-bit groups.</summary>
    static int PrefixedSize(string text)
    {
        var n = Encoding.UTF8.GetByteCount(text);
        return n + (n < 1 << 7 ? 1 : n < 1 << 14 ? 2 : n < 1 << 21 ? 3 : n < 1 << 28 ? 4 : 5);
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

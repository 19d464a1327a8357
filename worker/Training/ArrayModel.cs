using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Worker.Training;

/// <summary>
/// K models of one architecture trained as one (HFTA): every parameter has a leading member dimension K, Linear
/// is a batched matmul and Conv2d a grouped convolution, so member k's outputs and gradients depend only on its
/// own parameters and data. A single job is an array of width 1.
/// </summary>
public abstract class ArrayModel : IDisposable
{
    protected ArrayModel(int width) => Width = width;

    public int Width { get; private set; }

    /// <summary>Parameters in a fixed order; each is [K, ...] and requires grad.</summary>
    public List<(string Name, Tensor Value)> Parameters { get; } = [];

    /// <summary>The shape of one member's input sample (without K and batch).</summary>
    public abstract long[] SampleShape { get; }

    /// <summary>x: [K, B, ...SampleShape] → logits [K, B, classes].</summary>
    public abstract Tensor Forward(Tensor x);

    public static ArrayModel Create(ModelSpec spec, int inputs, int classes, IReadOnlyList<int> seeds) => spec.Type switch
    {
        ModelType.Mlp => new ArrayMlp(spec.Hidden, inputs, classes, seeds),
        ModelType.Cnn => new ArrayCnn(spec.Channels, spec.FcHidden, classes, seeds),
        _ => throw new NotSupportedException($"model type {spec.Type}"),
    };

    /// <summary>
    /// PyTorch's default init for Linear and Conv2d (kaiming-uniform with a=√5, i.e. U(±1/√fan_in) for weight and
    /// bias), drawn per member from its own seed so that a member's start does not depend on its array.
    /// </summary>
    protected Tensor Uniform(IReadOnlyList<int> seeds, int parameterIndex, long fanIn, params long[] memberShape)
    {
        var bound = 1.0 / Math.Sqrt(fanIn);
        var perMember = memberShape.Aggregate(1L, (a, b) => a * b);
        var values = new float[perMember * seeds.Count];
        for (int k = 0; k < seeds.Count; k++)
        {
            var rng = new Random(unchecked(seeds[k] * 7919 + parameterIndex * 104_729 + 1));
            for (long i = 0; i < perMember; i++) values[k * perMember + i] = (float)((rng.NextDouble() * 2 - 1) * bound);
        }
        var t = tensor(values, [seeds.Count, .. memberShape]);
        t.requires_grad_(true);
        return t;
    }

    /// <summary>Keeps only the given members (in that order): a member leaving the array takes its slices with it.</summary>
    public void Keep(Tensor members)
    {
        using var noGrad = no_grad();
        for (int i = 0; i < Parameters.Count; i++)
        {
            var (name, old) = Parameters[i];
            var kept = old.index_select(0, members).detach().requires_grad_(true);
            old.Dispose();
            Parameters[i] = (name, kept);
        }
        Width = (int)members.shape[0];
    }

    protected static Tensor Linear(Tensor x, Tensor weight, Tensor bias) =>
        // torch.baddbmm has swapped arguments in TorchSharp 0.107, so bmm + add.
        bmm(x, weight).add_(bias);

    public void Dispose()
    {
        foreach (var (_, p) in Parameters) p.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>MLP inputs → hidden… → classes with ReLU; Linear weights stored [K, in, out], biases [K, 1, out].</summary>
public sealed class ArrayMlp : ArrayModel
{
    readonly int _inputs;

    public ArrayMlp(IReadOnlyList<int> hidden, int inputs, int classes, IReadOnlyList<int> seeds) : base(seeds.Count)
    {
        _inputs = inputs;
        var sizes = new[] { inputs }.Concat(hidden).Append(classes).ToArray();
        for (int l = 0; l < sizes.Length - 1; l++)
        {
            Parameters.Add(($"fc{l}.weight", Uniform(seeds, 2 * l, sizes[l], sizes[l], sizes[l + 1])));
            Parameters.Add(($"fc{l}.bias", Uniform(seeds, 2 * l + 1, sizes[l], 1, sizes[l + 1])));
        }
    }

    public override long[] SampleShape => [_inputs];

    public override Tensor Forward(Tensor x)
    {
        var layers = Parameters.Count / 2;
        for (int l = 0; l < layers; l++)
        {
            x = Linear(x, Parameters[2 * l].Value, Parameters[2 * l + 1].Value);
            if (l < layers - 1) x = nn.functional.relu(x);
        }
        return x;
    }
}

/// <summary>
/// Two 3×3 convolutions (padding 1, ReLU, 2×2 max pool) and two fully connected layers, for 28×28 inputs.
/// Convolutions run batch-major as grouped convolutions over K·C channels; the FC layers model-major.
/// </summary>
public sealed class ArrayCnn : ArrayModel
{
    readonly int[] _channels;

    public ArrayCnn(IReadOnlyList<int> channels, int fcHidden, int classes, IReadOnlyList<int> seeds) : base(seeds.Count)
    {
        _channels = [1, channels[0], channels[1]];
        for (int c = 0; c < 2; c++)
        {
            long fanIn = _channels[c] * 9;
            Parameters.Add(($"conv{c}.weight", Uniform(seeds, 2 * c, fanIn, _channels[c + 1], _channels[c], 3, 3)));
            Parameters.Add(($"conv{c}.bias", Uniform(seeds, 2 * c + 1, fanIn, _channels[c + 1])));
        }
        var flat = channels[1] * 7 * 7;
        Parameters.Add(("fc0.weight", Uniform(seeds, 4, flat, flat, fcHidden)));
        Parameters.Add(("fc0.bias", Uniform(seeds, 5, flat, 1, fcHidden)));
        Parameters.Add(("fc1.weight", Uniform(seeds, 6, fcHidden, fcHidden, classes)));
        Parameters.Add(("fc1.bias", Uniform(seeds, 7, fcHidden, 1, classes)));
    }

    public override long[] SampleShape => [1, 28, 28];

    public override Tensor Forward(Tensor x)
    {
        long k = Width, b = x.shape[1];
        // [K, B, 1, 28, 28] → [B, K·1, 28, 28]: member k owns channel group k.
        var h = x.transpose(0, 1).reshape(b, k * _channels[0], 28, 28);
        for (int c = 0; c < 2; c++)
        {
            var w = Parameters[2 * c].Value.reshape(k * _channels[c + 1], _channels[c], 3, 3);
            var bias = Parameters[2 * c + 1].Value.reshape(k * _channels[c + 1]);
            h = nn.functional.conv2d(h, w, bias, strides: [1, 1], padding: [1, 1], groups: k);
            h = nn.functional.max_pool2d(nn.functional.relu(h), 2);
        }
        // [B, K·C, 7, 7] → [K, B, C·49]
        h = h.reshape(b, k, _channels[2] * 49).transpose(0, 1).contiguous();
        h = nn.functional.relu(Linear(h, Parameters[4].Value, Parameters[5].Value));
        return Linear(h, Parameters[6].Value, Parameters[7].Value);
    }
}

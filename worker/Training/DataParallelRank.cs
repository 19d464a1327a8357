using Orchestrator.Core;
using Orchestrator.Core.Collectives;
using Orchestrator.Core.Specs;
using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Worker.Training;

/// <summary>
/// One rank of a data-parallel job: a full replica of the model that trains on its share of each global batch
/// (rank r takes samples [r·B, (r+1)·B) of the step's B·world samples), combines its gradients with the
/// other ranks' over the data plane (average, sum or per-tensor Adasum), then takes one optimizer step.
/// Every rank receives bit-identical combined gradients, so every rank's parameters and optimizer state stay
/// bit-identical: any survivor of a failure holds the whole training state. (Horovod's Adasum optimizer instead
/// combines each rank's local update and keeps momentum per rank, which would break that property.)
/// </summary>
public sealed class DataParallelRank : IDisposable
{
    readonly JobSpec _spec;
    readonly FashionMnist _data;
    readonly Collective _collective;
    readonly GradientCombine _combine;
    readonly int _rank, _world, _batch, _trainCount;
    readonly float[] _images;
    readonly long[] _labels;
    readonly float[] _buffer;
    int[]? _order;
    int _orderEpoch = -1;

    public ArrayModel Model { get; }
    public ArrayOptimizer Optimizer { get; }
    public TensorLayout Layout { get; }
    public long Step { get; private set; }
    public long StepsPerEpoch { get; }

    /// <summary>Seconds spent so far in forward/backward, in combining over the data plane, and in the optimizer.</summary>
    public (double Compute, double Combine, double Optimizer) Time => (_compute.Elapsed.TotalSeconds, _combining.Elapsed.TotalSeconds, _optimizing.Elapsed.TotalSeconds);

    readonly System.Diagnostics.Stopwatch _compute = new(), _combining = new(), _optimizing = new();

    public DataParallelRank(JobSpec spec, FashionMnist data, int rank, int world, Collective collective, GradientCombine combine)
    {
        (_spec, _data, _rank, _world, _collective, _combine) = (spec, data, rank, world, collective, combine);
        _batch = spec.Train.BatchSize;
        _trainCount = spec.Data.TrainLimit > 0 ? Math.Min(spec.Data.TrainLimit, data.TrainCount) : data.TrainCount;
        StepsPerEpoch = Math.Max(1, _trainCount / (_batch * world));
        // Same seed on every rank: identical replicas from the first step.
        Model = ArrayModel.Create(spec.Model, FashionMnist.Pixels, FashionMnist.Classes, [spec.Train.Seed]);
        Optimizer = new ArrayOptimizer(Model, spec.Train.Optimizer, [MemberHyperparameters.From(spec.Train)]);
        Layout = new TensorLayout(Model.Parameters.Select(p => (int)p.Value.numel()).ToList());
        _images = new float[_batch * FashionMnist.Pixels];
        _labels = new long[_batch];
        _buffer = new float[Layout.Length];
    }

    /// <summary>One synchronous data-parallel step; returns this rank's mean loss on its share.</summary>
    public async Task<float> TrainStep(CancellationToken ct = default)
    {
        _compute.Start();
        var loss = ComputeGradients();
        _compute.Stop();
        _combining.Start();
        CopyGradients(into: _buffer);
        await _collective.AllReduce(_buffer, Layout, _combine, Step, ct);
        LoadGradients(from: _buffer);
        _combining.Stop();
        _optimizing.Start();
        Optimizer.Step();
        _optimizing.Stop();
        Step++;
        return loss;
    }

    /// <summary>Forward and backward on this rank's share of the step's global batch (no awaits: TorchSharp's
    /// dispose scopes belong to a thread).</summary>
    float ComputeGradients()
    {
        using var scope = NewDisposeScope();
        var epoch = (int)(Step / StepsPerEpoch);
        if (_orderEpoch != epoch)
        {
            _order = FashionMnist.EpochOrder(_trainCount, _spec.Train.Seed, epoch);
            _orderEpoch = epoch;
        }
        var start = (int)(Step % StepsPerEpoch) * _batch * _world + _rank * _batch;
        var share = _order.AsSpan(start, _batch);
        FashionMnist.Gather(_data.TrainImages, share, _images);
        for (int i = 0; i < _batch; i++) _labels[i] = _data.TrainLabels[share[i]];
        var x = tensor(_images, [1, _batch, .. Model.SampleShape]);
        var y = tensor(_labels, [_batch]);
        var loss = nn.functional.cross_entropy(Model.Forward(x).reshape(_batch, FashionMnist.Classes), y);
        Optimizer.ZeroGrad();
        loss.backward();
        return loss.item<float>();
    }

    /// <summary>Test-set accuracy of this rank's replica (the same on every rank).</summary>
    public double TestAccuracy() => ArrayTrainer.TestAccuracy(Model, _data, CPU)[0];

    void CopyGradients(float[] into)
    {
        foreach (var ((offset, length), (_, p)) in Layout.Tensors.Zip(Model.Parameters))
            p.grad!.data<float>().CopyTo(into.AsSpan(offset, length));
    }

    void LoadGradients(float[] from)
    {
        foreach (var ((offset, length), (_, p)) in Layout.Tensors.Zip(Model.Parameters))
            p.grad!.data<float>().CopyFrom(from.AsSpan(offset, length));
    }

    public void Dispose()
    {
        Optimizer.Dispose();
        Model.Dispose();
    }
}

using Orchestrator.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Worker.Training;

/// <summary>One member of an array: its own spec, plan, step counter and data order.</summary>
public sealed class MemberRun(string id, JobSpec spec)
{
    /// <summary>The member's identity (its job id in the cluster).</summary>
    public string Id { get; } = id;
    public JobSpec Spec { get; } = spec;
    public TrainingPlan Plan { get; } = TrainingPlan.For(spec);
    public long Step { get; set; }
    public int TrainingEpoch => (int)(Step / Plan.StepsPerEpoch);
    public bool Done => Step >= Plan.TotalSteps;
    int[]? _order;
    int _orderTrainingEpoch = -1;

    /// <summary>The training-image indices of this member's next batch.</summary>
    public ReadOnlySpan<int> NextBatch(int trainCount)
    {
        var trainingEpoch = TrainingEpoch;
        if (_orderTrainingEpoch != trainingEpoch)
        {
            var count = Spec.Data.TrainLimit > 0 ? Math.Min(Spec.Data.TrainLimit, trainCount) : trainCount;
            _order = FashionMnist.TrainingEpochOrder(count, Spec.Train.Seed, trainingEpoch);
            _orderTrainingEpoch = trainingEpoch;
        }
        var b = Spec.Train.BatchSize;
        var start = (int)(Step % Plan.StepsPerEpoch) * b;
        return _order.AsSpan(start, b);
    }
}

/// <summary>
/// Trains K members of one architecture as one array on one device. The loss is the sum of member losses, so
/// every member's gradient is exactly its own.
/// </summary>
public sealed class ArrayTrainer : IDisposable
{
    const int EvalChunk = 1000;
    readonly FashionMnist _data;
    readonly Device _device;
    float[] _images;
    long[] _labels;
    readonly int _batch;
    readonly List<MemberRun> _members;

    public ArrayModel Model { get; }
    public ArrayOptimizer Optimizer { get; }
    public IReadOnlyList<MemberRun> Members => _members;

    /// <param name="ids">Member identities (default: their spec names).</param>
    public ArrayTrainer(IReadOnlyList<JobSpec> specs, FashionMnist data, IReadOnlyList<string>? ids = null, Device? device = null)
    {
        if (specs.Count == 0) throw new ArgumentException("an array needs at least one member", nameof(specs));
        var keys = specs.Select(Orchestrator.Core.Fusion.FusionPlanning.Key).Distinct().ToList();
        if (specs.Count > 1 && (keys.Count != 1 || keys[0] is null))
            throw new ArgumentException("array members must share one fusion key (architecture, batch size, optimizer, data set)", nameof(specs));
        _data = data;
        _device = device ?? CPU;
        _members = specs.Select((s, i) => new MemberRun(ids?[i] ?? s.Name, s)).ToList();
        _batch = specs[0].Train.BatchSize;
        Model = ArrayModel.Create(specs[0].Model, FashionMnist.Pixels, FashionMnist.Classes, specs.Select(s => s.Train.Seed).ToList());
        Optimizer = new ArrayOptimizer(Model, specs[0].Train.Optimizer, specs.Select(s => MemberHyperparameters.From(s.Train)).ToList());
        _images = new float[specs.Count * _batch * FashionMnist.Pixels];
        _labels = new long[specs.Count * _batch];
    }

    public int Width => _members.Count;

    /// <summary>Each member's batch size (members of an array share it).</summary>
    public int BatchSize => _batch;

    /// <summary>Removes members (cancelled, failed, finished) without disturbing the others' state.</summary>
    public void Remove(IReadOnlyCollection<string> ids)
    {
        var keep = Enumerable.Range(0, Width).Where(i => !ids.Contains(_members[i].Id)).ToList();
        if (keep.Count == Width) return;
        if (keep.Count > 0)
        {
            using var index = tensor(keep.Select(i => (long)i).ToArray());
            Model.Keep(index);
            Optimizer.Keep(index, keep);
        }
        _members.RemoveAll(m => ids.Contains(m.Id));
        _images = new float[Width * _batch * FashionMnist.Pixels];
        _labels = new long[Width * _batch];
    }

    /// <summary>One optimizer step for every member; returns each member's mean batch loss.</summary>
    public float[] Step()
    {
        using var scope = NewDisposeScope();
        for (int k = 0; k < Width; k++)
        {
            var batch = Members[k].NextBatch(_data.TrainCount);
            FashionMnist.Gather(_data.TrainImages, batch, _images.AsSpan(k * _batch * FashionMnist.Pixels, _batch * FashionMnist.Pixels));
            for (int i = 0; i < _batch; i++) _labels[k * _batch + i] = _data.TrainLabels[batch[i]];
        }
        var x = tensor(_images, [Width, _batch, .. Model.SampleShape], device: _device);
        var y = tensor(_labels, [Width * _batch], device: _device);
        var memberLoss = MemberLosses(Model.Forward(x), y);
        Optimizer.ZeroGrad();
        memberLoss.sum().backward();
        Optimizer.Step();
        foreach (var m in Members) m.Step++;
        return memberLoss.detach().cpu().data<float>().ToArray();
    }

    Tensor MemberLosses(Tensor logits, Tensor labels) =>
        nn.functional.cross_entropy(logits.reshape(Width * _batch, FashionMnist.Classes), labels, reduction: nn.Reduction.None)
            .view(Width, _batch).mean([1]);

    /// <summary>Test-set accuracy of every member.</summary>
    public double[] Evaluate() => TestAccuracy(Model, _data, _device);

    /// <summary>Test-set accuracy of each of a model's K members (the whole 10,000-image test set).</summary>
    public static double[] TestAccuracy(ArrayModel model, FashionMnist data, Device device) =>
        CountCorrect(model, data, device, 0, data.TestCount).Select(c => (double)c / data.TestCount).ToArray();

    /// <summary>How many of test images [from, from + count) each member classifies correctly.</summary>
    public static long[] CountCorrect(ArrayModel model, FashionMnist data, Device device, int from, int count)
    {
        var width = model.Width;
        var correct = new long[width];
        var buffer = new float[EvalChunk * FashionMnist.Pixels];
        using var noGrad = no_grad();
        for (int start = from; start < from + count; start += EvalChunk)
        {
            using var scope = NewDisposeScope();
            var n = Math.Min(EvalChunk, from + count - start);
            var indices = Enumerable.Range(start, n).ToArray();
            FashionMnist.Gather(data.TestImages, indices, buffer);
            var x = tensor(buffer.AsSpan(0, n * FashionMnist.Pixels).ToArray(), [1, n, .. model.SampleShape], device: device)
                .expand([width, n, .. model.SampleShape]);
            var predicted = model.Forward(x).argmax(2).cpu();
            var truth = tensor(data.TestLabels.AsSpan(start, n).ToArray().Select(b => (long)b).ToArray()).unsqueeze(0);
            var hits = predicted.eq(truth).sum([1]).data<long>().ToArray();
            for (int k = 0; k < width; k++) correct[k] += hits[k];
        }
        return correct;
    }

    public byte[] Checkpoint(int member) => MemberCheckpoint.Capture(Model, Optimizer, member, Members[member].Step);

    public void Restore(int member, byte[] checkpoint) =>
        Members[member].Step = MemberCheckpoint.Restore(checkpoint, Model, Optimizer, member);

    public void Dispose()
    {
        Optimizer.Dispose();
        Model.Dispose();
    }
}

using System.Diagnostics;
using Orchestrator.Core.Collectives;
using TorchSharp;
using static TorchSharp.torch;

namespace Orchestrator.Worker.Training;

/// <summary>
/// One rank of a data-parallel job: a full replica of the model that trains on its share of each global batch
/// (rank r takes samples [c + r·B, c + (r+1)·B) of the training epoch's order, c the samples the job has consumed in the
/// training epoch), combines its gradients with the other ranks' over the data plane (average, sum or per-tensor Adasum),
/// then takes one optimizer step. Every rank receives bit-identical combined gradients, so every rank's parameters
/// and optimizer state stay bit-identical: any survivor of a failure holds the whole training state. (Horovod's
/// Adasum optimizer instead combines each rank's local update and keeps momentum per rank, which would break that
/// property.) The membership may change between steps (<see cref="Join"/>); a step whose combination failed keeps
/// its local gradients so that the survivors can redo just the combination.
/// </summary>
public sealed class DataParallelRank : IGangRank
{
    const int StateMagic = 0x5044524F; // "ORDP"
    readonly JobSpec _spec;
    readonly FashionMnist _data;
    readonly GradientCombine _combine;
    readonly int _batch, _trainCount;
    readonly float[] _images;
    readonly long[] _labels;
    readonly float[] _buffer, _local;
    readonly GlobalBatches _batches;
    Collective? _collective;
    int _rank;
    int[]? _order;
    int _orderTrainingEpoch = -1;
    float _loss;

    public ArrayModel Model { get; }
    public ArrayOptimizer Optimizer { get; }
    public TensorLayout Layout { get; }

    /// <summary>Completed steps.</summary>
    public long Step { get; private set; }

    /// <summary>Passes over the training data completed.</summary>
    public int TrainingEpoch => _batches.TrainingEpoch;

    public IReadOnlyList<int> NonFiniteRanks { get; private set; } = [];
    bool _poisonNext;

    public void PoisonNextStep() => _poisonNext = true;

    /// <summary>True while this rank holds local gradients of step <see cref="Step"/> whose combination failed.</summary>
    public bool HasPendingGradients { get; private set; }

    public bool Done => _batches.Done(Step);
    public long TotalSteps => _batches.TotalSteps(Step);

    /// <summary>Seconds spent so far in forward/backward, in combining over the data plane, and in the optimizer.</summary>
    public (double Compute, double Combine, double Optimizer) Time => (_compute.Elapsed.TotalSeconds, _combining.Elapsed.TotalSeconds, _optimizing.Elapsed.TotalSeconds);

    readonly Stopwatch _compute = new(), _combining = new(), _optimizing = new();

    public DataParallelRank(JobSpec spec, FashionMnist data, GradientCombine combine)
    {
        (_spec, _data, _combine) = (spec, data, combine);
        _batch = spec.Train.BatchSize;
        _trainCount = spec.Data.TrainLimit > 0 ? Math.Min(spec.Data.TrainLimit, data.TrainCount) : data.TrainCount;
        _batches = new GlobalBatches(spec.Train, _trainCount, "the data set");
        // Same seed on every rank: identical replicas from the first step.
        Model = ArrayModel.Create(spec.Model, FashionMnist.Pixels, FashionMnist.Classes, [spec.Train.Seed]);
        Optimizer = new ArrayOptimizer(Model, spec.Train.Optimizer, [MemberHyperparameters.From(spec.Train)]);
        Layout = new TensorLayout(Model.Parameters.Select(p => (int)p.Value.numel()).ToList());
        _images = new float[_batch * FashionMnist.Pixels];
        _labels = new long[_batch];
        _buffer = new float[Layout.Length];
        _local = new float[Layout.Length];
    }

    public DataParallelRank(JobSpec spec, FashionMnist data, int rank, int world, Collective collective, GradientCombine combine)
        : this(spec, data, combine) => Join(collective, rank, world);

    /// <summary>Takes part in a (new) membership epoch as rank <paramref name="rank"/> of <paramref name="world"/>.</summary>
    public void Join(Collective collective, int rank, int world)
    {
        _batches.World = world;
        (_collective, _rank) = (collective, rank);
    }

    /// <summary>
    /// One synchronous data-parallel step; returns this rank's mean loss on its share (when it redoes only the
    /// combination of a step whose gradients it already had, the loss it computed then).
    /// </summary>
    public async Task<float> TrainStep(CancellationToken ct = default)
    {
        var collective = _collective ?? throw new InvalidOperationException("join a membership first");
        if (!HasPendingGradients)
        {
            _compute.Start();
            _loss = ComputeGradients();
            _compute.Stop();
            GradientBuffer.Copy(Model.Parameters.Select(p => p.Value), Layout, _local);
            if (_poisonNext) Array.Fill(_local, float.NaN);
            _poisonNext = false;
            HasPendingGradients = true;
        }
        _combining.Start();
        _local.CopyTo(_buffer, 0);
        await collective.AllReduce(_buffer, Layout, _combine, Step, ct);
        if (!Collective.AllFinite(_buffer))
        {
            // Every rank holds the same combination, so every rank skips this step alike.
            NonFiniteRanks = await collective.NonFiniteRanks(Collective.AllFinite(_local), Step, ct);
            _combining.Stop();
            HasPendingGradients = false;
            Step++;
            _batches.WrapIfEpochEnded();
            return _loss;
        }
        NonFiniteRanks = [];
        GradientBuffer.Load(Model.Parameters.Select(p => p.Value), Layout, _buffer);
        _combining.Stop();
        _optimizing.Start();
        Optimizer.Step();
        _optimizing.Stop();
        HasPendingGradients = false;
        Step++;
        _batches.WrapIfEpochEnded();
        return _loss;
    }

    /// <summary>
    /// Run by every rank at the start of a membership epoch, before training in it. The ranks exchange how far
    /// they got (completed steps, and whether they hold gradients of a step whose combination failed). If all are
    /// at the same point they go on as they are, and if all hold such gradients they redo only that step's
    /// combination. Otherwise (a joiner, or a failure that caught ranks one step apart) the rank furthest ahead
    /// broadcasts its state and everyone continues from there: no step is repeated, none goes backwards.
    /// Returns the rank whose state was broadcast, or -1 when none was needed.
    /// </summary>
    /// <param name="joining">This rank has no training state yet (it joined a running job).</param>
    public async Task<int> AgreeOnState(bool joining, CancellationToken ct = default)
    {
        var collective = _collective ?? throw new InvalidOperationException("join a membership first");
        var progress = joining ? -2 : Step * 2 + (HasPendingGradients ? 1 : 0);
        var all = await collective.Exchange(progress, AgreementStep, ct);
        if (all.All(p => p == all[0])) return -1;
        var root = Array.IndexOf(all, all.Max());
        var state = await collective.Broadcast(_rank == root ? CaptureState() : null, root, AgreementStep, MaxStateBytes, ct);
        if (_rank != root) RestoreState(state);
        HasPendingGradients = false;
        return root;
    }

    /// <summary>The frames of the agreement use a step number no training step has.</summary>
    const long AgreementStep = -2;

    /// <summary>The most a captured state can be: the parameters and at most three optimizer slots for each, and the
    /// batch order's few numbers; what a peer announces beyond it is refused.</summary>
    long MaxStateBytes => 16L * Layout.Length + (1 << 20);

    /// <summary>Forward and backward on this rank's share of the step's global batch (no awaits: TorchSharp's
    /// dispose scopes belong to a thread).</summary>
    float ComputeGradients()
    {
        using var scope = NewDisposeScope();
        _batches.WrapIfEpochEnded();
        if (_orderTrainingEpoch != TrainingEpoch)
        {
            _order = FashionMnist.TrainingEpochOrder(_trainCount, _spec.Train.Seed, TrainingEpoch);
            _orderTrainingEpoch = TrainingEpoch;
        }
        var share = _order.AsSpan((int)_batches.Start(_rank), _batch);
        _batches.Advance();
        FashionMnist.Gather(_data.TrainImages, share, _images);
        for (int i = 0; i < _batch; i++) _labels[i] = _data.TrainLabels[share[i]];
        var x = tensor(_images, [1, _batch, .. Model.SampleShape]);
        var y = tensor(_labels, [_batch]);
        var loss = nn.functional.cross_entropy(Model.Forward(x).reshape(_batch, FashionMnist.Classes), y);
        Optimizer.ZeroGrad();
        loss.backward();
        return loss.item<float>();
    }

    /// <summary>Test-set accuracy of this rank's replica (the same on every rank), on the whole test set.</summary>
    public double TestAccuracy() => ArrayTrainer.TestAccuracy(Model, _data, CPU)[0];

    /// <summary>Test-set accuracy computed together: each rank classifies its slice of the test set and the counts are summed.</summary>
    public async Task<double> SharedTestAccuracy(CancellationToken ct = default)
    {
        var collective = _collective ?? throw new InvalidOperationException("join a membership first");
        var from = (int)((long)_data.TestCount * _rank / _batches.World);
        var to = (int)((long)_data.TestCount * (_rank + 1) / _batches.World);
        var correct = ArrayTrainer.CountCorrect(Model, _data, CPU, from, to - from)[0];
        var all = await collective.Exchange(correct, Step, ct);
        return (double)all.Sum() / _data.TestCount;
    }

    public async Task<TestMetrics?> Evaluate(CancellationToken ct = default) => new(await SharedTestAccuracy(ct));

    /// <summary>Parameters, optimizer state and data position, to broadcast to joiners or to checkpoint.</summary>
    public byte[] CaptureState()
    {
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms);
        w.Write(StateMagic);
        _batches.Write(w);
        w.Write(MemberCheckpoint.Capture(Model, Optimizer, 0, Step));
        return ms.ToArray();
    }

    public void RestoreState(byte[] state)
    {
        using var r = new BinaryReader(new MemoryStream(state));
        if (r.ReadInt32() != StateMagic) throw new InvalidDataException("not a data-parallel checkpoint (was the job's kind changed?)");
        _batches.Read(r);
        var rest = r.ReadBytes(state.Length - (int)r.BaseStream.Position);
        Step = MemberCheckpoint.Restore(rest, Model, Optimizer, 0);
        HasPendingGradients = false;
    }

    public void Dispose()
    {
        Optimizer.Dispose();
        Model.Dispose();
    }
}

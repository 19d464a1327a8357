using System.Diagnostics;
using System.Runtime.InteropServices;
using Orchestrator.Core.Collectives;
using Orchestrator.Core.Recommendation;
using static TorchSharp.torch;

namespace Orchestrator.Worker.Training;

/// <summary>
/// One rank of a data-parallel recommendation job. Every rank holds a replica of the dense MLPs; the embedding rows
/// live in the job's shard grains. A step: rank r takes examples [c + r·B, c + (r+1)·B) of the file's training part
/// (c the examples consumed in the training epoch), looks its rows up and runs forward and backward; the dense gradients
/// are combined over the data plane (average or Adasum) and every rank takes the same dense step; the row
/// gradients are all-gathered and merged in rank order (per row: the sum over ranks divided by the world size, the
/// gradient of the global batch's mean loss), so every rank holds the same merged rows. Each shard is then updated
/// exactly once, by rank (shard mod world), and the ranks meet at a barrier before the next step's lookups.
/// A rank that fails after the merge leaves the step unfinished on the survivors, who hold every row's gradient:
/// <see cref="AgreeOnState"/> finishes it (shard updates are idempotent by step), so no step is lost or repeated.
/// </summary>
public sealed class DlrmRank : IGangRank
{
    const int StateMagic = 0x4B524C44; // "DLRK"
    /// <summary>Frames of the agreement and of finishing a step there use step numbers no training step has.</summary>
    const long AgreementStep = -2, FinishingStep = -3;

    readonly JobSpec _spec;
    readonly DlrmTrainer _dlrm;
    readonly GradientCombine _combine;
    readonly CriteoCursor _data;
    readonly List<CriteoExample> _test;
    readonly int _batch;
    readonly TensorLayout _dense;
    readonly float[] _buffer;
    readonly Stopwatch _compute = new(), _combining = new(), _updating = new();
    readonly GlobalBatches _batches;
    Collective? _collective;
    int _rank;
    /// <summary>The merged row gradients of step Step + 1 after its dense step: some shards may not be updated yet.</summary>
    RowGradients? _unfinished;

    public DlrmRank(JobSpec spec, DlrmTrainer dlrm, GradientCombine combine)
    {
        (_spec, _dlrm, _combine) = (spec, dlrm, combine);
        _batch = spec.Train.BatchSize;
        _data = new CriteoCursor(spec.Data.Path, dlrm.Shape.TableRows);
        _test = _data.Read(0, spec.Data.TestExamples);
        _batches = new GlobalBatches(spec.Train, CriteoFormat.Count(spec.Data.Path) - _test.Count, spec.Data.Path);
        _dense = new TensorLayout(dlrm.DenseParameters.Select(p => (int)p.numel()).ToList());
        _buffer = new float[_dense.Length];
    }

    public long Step => _dlrm.Step;
    public IReadOnlyList<int> NonFiniteRanks { get; private set; } = [];
    bool _poisonNext;

    public void PoisonNextStep() => _poisonNext = true;
    public int TrainingEpoch => _batches.TrainingEpoch;
    public bool Done => _batches.Done(Step);
    public long TotalSteps => _batches.TotalSteps(Step);

    public (double Compute, double Combine, double Optimizer) Time => (_compute.Elapsed.TotalSeconds, _combining.Elapsed.TotalSeconds, _updating.Elapsed.TotalSeconds);

    public void Join(Collective collective, int rank, int world)
    {
        _batches.World = world;
        (_collective, _rank) = (collective, rank);
    }

    public async Task<float> TrainStep(CancellationToken ct = default)
    {
        var collective = _collective ?? throw new InvalidOperationException("join a membership first");
        if (_unfinished is not null) throw new InvalidOperationException("step unfinished: agree on the state first");
        _batches.WrapIfEpochEnded();
        _compute.Start();
        var rows = await _dlrm.Backward(_data.Read(_test.Count + _batches.Start(_rank), _batch), ct);
        _compute.Stop();

        _combining.Start();
        GradientBuffer.Copy(_dlrm.DenseParameters, _dense, _buffer);
        if (_poisonNext)
        {
            Array.Fill(_buffer, float.NaN);
            Array.Fill(rows.Gradients, float.NaN);
            _poisonNext = false;
        }
        var mineFinite = Collective.AllFinite(_buffer) && Collective.AllFinite(rows.Gradients);
        await collective.AllReduce(_buffer, _dense, _combine, Step, ct);
        GradientBuffer.Load(_dlrm.DenseParameters, _dense, _buffer);
        var shares = await Task.WhenAll(Enumerable.Range(0, _batches.World).Select(r => collective.Broadcast(r == _rank ? Pack(rows) : null, r, Step, MaxShareBytes, ct)));
        var merged = Merge(shares, _dlrm.Shape.Dim);
        _combining.Stop();
        if (!Collective.AllFinite(_buffer) || !Collective.AllFinite(merged.Gradients))
        {
            // Every rank holds the same combination: all skip the step, and no non-finite row reaches a shard.
            NonFiniteRanks = await collective.NonFiniteRanks(mineFinite, Step, ct);
            _batches.Advance();
            _dlrm.CompleteStep();
            _batches.WrapIfEpochEnded();
            return rows.Loss;
        }
        NonFiniteRanks = [];

        _updating.Start();
        _dlrm.StepDense();
        _unfinished = merged;
        _batches.Advance();
        await _dlrm.UpdateRows(merged, shard => shard % _batches.World == _rank, ct);
        await collective.Exchange(0, Step, ct); // every shard holds the step before anyone looks up the next
        _dlrm.CompleteStep();
        _unfinished = null;
        _updating.Stop();
        _batches.WrapIfEpochEnded();
        return rows.Loss;
    }

    /// <summary>
    /// The ranks exchange how far they got: completed steps, and whether they hold a step whose shard updates may be
    /// unfinished. All equal: go on (all unfinished: finish the step, each rank its shards of the new membership).
    /// Otherwise the rank furthest ahead finishes its step if needed (every shard; a shard that has it ignores it) and
    /// broadcasts its state. A rank without merged gradients recomputes its step: nothing outside it changed.
    /// </summary>
    public async Task<int> AgreeOnState(bool joining, CancellationToken ct = default)
    {
        var collective = _collective ?? throw new InvalidOperationException("join a membership first");
        var progress = joining ? -2 : Step * 2 + (_unfinished is null ? 0 : 1);
        var all = await collective.Exchange(progress, AgreementStep, ct);
        if (all.All(p => p == all[0]))
        {
            if (_unfinished is { } step)
            {
                await _dlrm.UpdateRows(step, shard => shard % _batches.World == _rank, ct);
                await collective.Exchange(0, FinishingStep, ct);
                Finish();
            }
            return -1;
        }
        var root = Array.IndexOf(all, all.Max());
        if (_rank == root && _unfinished is { } mine)
        {
            await _dlrm.UpdateRows(mine, _ => true, ct);
            Finish();
        }
        var state = await collective.Broadcast(_rank == root ? CaptureState() : null, root, AgreementStep, 16L * _dense.Length + (1 << 20), ct);
        if (_rank != root) RestoreState(state);
        return root;
    }

    void Finish()
    {
        _dlrm.CompleteStep();
        _unfinished = null;
        _batches.WrapIfEpochEnded();
    }

    /// <summary>Rank 0 evaluates the held-out examples (all ranks hold the same model); the others go on.</summary>
    public async Task<TestMetrics?> Evaluate(CancellationToken ct = default)
    {
        if (_rank != 0) return null;
        var (logLoss, auc, accuracy) = await _dlrm.Evaluate(_test);
        return new TestMetrics(accuracy, auc, logLoss);
    }

    public byte[] CaptureState()
    {
        if (_unfinished is not null) throw new InvalidOperationException("finish the step before capturing the state");
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms);
        w.Write(StateMagic);
        _batches.Write(w);
        w.Write(_dlrm.CaptureDense());
        return ms.ToArray();
    }

    public void RestoreState(byte[] state)
    {
        using var r = new BinaryReader(new MemoryStream(state));
        if (r.ReadInt32() != StateMagic) throw new InvalidDataException("not a data-parallel dlrm checkpoint (was the job's kind changed?)");
        _batches.Read(r);
        _dlrm.RestoreDense(r.ReadBytes(state.Length - (int)r.BaseStream.Position));
        _unfinished = null;
    }

    /// <summary>A rank's row gradients as bytes: count, ids, then dim floats per id.</summary>
    /// <summary>The most one rank's row gradients can be: every example of its batch using a distinct row of every table.</summary>
    long MaxShareBytes => sizeof(int) + (long)_batch * CriteoFormat.CategoricalFeatures * (sizeof(long) + _dlrm.Shape.Dim * sizeof(float));

    static byte[] Pack(RowGradients rows)
    {
        var ids = MemoryMarshal.AsBytes(rows.Ids.AsSpan());
        var grads = MemoryMarshal.AsBytes(rows.Gradients.AsSpan());
        var bytes = new byte[sizeof(int) + ids.Length + grads.Length];
        BitConverter.TryWriteBytes(bytes, rows.Ids.Length);
        ids.CopyTo(bytes.AsSpan(sizeof(int)));
        grads.CopyTo(bytes.AsSpan(sizeof(int) + ids.Length));
        return bytes;
    }

    /// <summary>
    /// Every rank's row gradients merged: per row the sum in rank order divided by the number of ranks, ids
    /// ascending. Bit-identical on every rank, since every rank merges the same bytes in the same order.
    /// </summary>
    public static RowGradients Merge(IReadOnlyList<byte[]> shares, int dim)
    {
        var sums = new SortedDictionary<long, float[]>();
        for (int rank = 0; rank < shares.Count; rank++)
        {
            var share = shares[rank];
            var count = share.Length >= sizeof(int) ? BitConverter.ToInt32(share) : -1;
            if (count < 0 || share.Length != sizeof(int) + (long)count * (sizeof(long) + dim * sizeof(float)))
                throw new PeerFailedException(rank, PeerFailure.BadFrame, $"rank {rank} sent {share.Length} bytes of row gradients that do not hold {count} rows of {dim} values");
            var ids = MemoryMarshal.Cast<byte, long>(share.AsSpan(sizeof(int), count * sizeof(long)));
            var grads = MemoryMarshal.Cast<byte, float>(share.AsSpan(sizeof(int) + count * sizeof(long)));
            for (int n = 0; n < count; n++)
            {
                var row = grads.Slice(n * dim, dim);
                if (!sums.TryGetValue(ids[n], out var sum)) sums[ids[n]] = row.ToArray();
                else for (int d = 0; d < dim; d++) sum[d] += row[d];
            }
        }
        var merged = new float[sums.Count * dim];
        var i = 0;
        foreach (var sum in sums.Values)
        {
            for (int d = 0; d < dim; d++) merged[i * dim + d] = sum[d] / shares.Count;
            i++;
        }
        return new RowGradients(0, sums.Keys.ToArray(), merged);
    }

    public void Dispose()
    {
        _data.Dispose();
        _dlrm.Dispose();
    }
}

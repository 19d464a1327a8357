using Orchestrator.Core.Recommendation;
using static TorchSharp.torch;

namespace Orchestrator.Worker.Training;

/// <summary>The shape of a DLRM: embedding width, tables' rows, and the hidden widths of its two MLPs.</summary>
public sealed record DlrmShape(int Dim, IReadOnlyList<int> TableRows, IReadOnlyList<int> Bottom, IReadOnlyList<int> Top)
{
    public int Vectors => 1 + CriteoFormat.CategoricalFeatures;
    public int Interactions => Vectors * (Vectors - 1) / 2;
}

/// <summary>The loss of a batch and the gradients of the distinct embedding rows it used (dim floats per id).</summary>
public sealed record RowGradients(float Loss, long[] Ids, float[] Gradients);

/// <summary>
/// DLRM (Naumov et al.): dense features → bottom MLP → a vector of width dim; 26 categories → embedding rows (from
/// an <see cref="IEmbeddingStore"/>, only the rows the batch needs); the pairwise dot products of those 27
/// vectors, with the bottom vector, → top MLP → click logit; binary cross-entropy. The dense MLPs are trained
/// here (Adam), the embedding rows by their store (Adagrad) from the gradients this computes.
/// </summary>
public sealed class DlrmTrainer : IDisposable
{
    readonly DlrmShape _shape;
    readonly EmbeddingLayout _layout;
    readonly IEmbeddingStore _store;
    readonly ArrayMlp _bottom, _top;
    readonly ArrayOptimizer _bottomOptimizer, _topOptimizer;
    readonly Tensor _lower;

    public DlrmTrainer(DlrmShape shape, EmbeddingLayout layout, IEmbeddingStore store, int seed, double lr)
    {
        (_shape, _layout, _store) = (shape, layout, store);
        _bottom = new ArrayMlp(shape.Bottom, CriteoFormat.DenseFeatures, shape.Dim, [seed]);
        _top = new ArrayMlp(shape.Top, shape.Dim + shape.Interactions, 1, [seed + 1]);
        var hyper = new MemberHyperparameters(lr, 0, 0, 0.9, 0.999, 1e-8);
        _bottomOptimizer = new ArrayOptimizer(_bottom, OptimizerKind.Adam, [hyper]);
        _topOptimizer = new ArrayOptimizer(_top, OptimizerKind.Adam, [hyper]);
        // Indices of the strictly lower triangle of the 27×27 dot-product matrix.
        var pairs = Enumerable.Range(0, shape.Vectors).SelectMany(i => Enumerable.Range(0, i).Select(j => (long)(i * shape.Vectors + j))).ToArray();
        _lower = tensor(pairs);
    }

    public long Step { get; private set; }
    public DlrmShape Shape => _shape;

    /// <summary>Distinct ids of a batch and, per (example, table), the position of its row among them.</summary>
    (long[] Ids, long[] Positions) Rows(IReadOnlyList<CriteoExample> batch)
    {
        var index = new Dictionary<long, long>();
        var ids = new List<long>();
        var positions = new long[batch.Count * CriteoFormat.CategoricalFeatures];
        for (int b = 0; b < batch.Count; b++)
            for (int t = 0; t < CriteoFormat.CategoricalFeatures; t++)
            {
                var id = _layout.Id(t, batch[b].Categories[t]);
                if (!index.TryGetValue(id, out var at))
                {
                    index[id] = at = ids.Count;
                    ids.Add(id);
                }
                positions[b * CriteoFormat.CategoricalFeatures + t] = at;
            }
        return (ids.ToArray(), positions);
    }

    Tensor Logits(IReadOnlyList<CriteoExample> batch, Tensor rows, long[] positions)
    {
        var n = batch.Count;
        var dense = tensor(batch.SelectMany(e => e.Dense).ToArray(), [1, n, CriteoFormat.DenseFeatures]);
        var bottom = nn.functional.relu(_bottom.Forward(dense)).view(n, 1, _shape.Dim);
        var embedded = rows.index_select(0, tensor(positions)).view(n, CriteoFormat.CategoricalFeatures, _shape.Dim);
        var vectors = cat([bottom, embedded], 1);
        var dots = bmm(vectors, vectors.transpose(1, 2)).view(n, -1).index_select(1, _lower);
        var top = _top.Forward(cat([bottom.view(n, _shape.Dim), dots], 1).unsqueeze(0));
        return top.view(n);
    }

    /// <summary>One training step on a batch; returns its mean log loss.</summary>
    public async Task<float> TrainStep(IReadOnlyList<CriteoExample> batch, CancellationToken ct = default)
    {
        var rows = await Backward(batch, ct);
        StepDense();
        await _store.Update(Step + 1, rows.Ids, rows.Gradients, ct);
        CompleteStep();
        return rows.Loss;
    }

    /// <summary>
    /// Forward and backward for the next step on a batch: looks its rows up, leaves the dense MLPs' gradients in
    /// <see cref="DenseParameters"/> and returns the loss and the gradients of the rows it used.
    /// </summary>
    public async Task<RowGradients> Backward(IReadOnlyList<CriteoExample> batch, CancellationToken ct = default)
    {
        var (ids, positions) = Rows(batch);
        var weights = await _store.Lookup(Step + 1, ids, ct);
        using var scope = NewDisposeScope();
        var rows = tensor(weights, [ids.Length, _shape.Dim]).requires_grad_(true);
        var labels = tensor(batch.Select(e => e.Label).ToArray());
        var objective = nn.functional.binary_cross_entropy_with_logits(Logits(batch, rows, positions), labels);
        _bottomOptimizer.ZeroGrad();
        _topOptimizer.ZeroGrad();
        objective.backward();
        return new RowGradients(objective.item<float>(), ids, rows.grad!.data<float>().ToArray());
    }

    /// <summary>The dense MLPs' parameters in a fixed order (their gradients are what ranks combine).</summary>
    public IReadOnlyList<Tensor> DenseParameters => [.. _bottom.Parameters.Select(p => p.Value), .. _top.Parameters.Select(p => p.Value)];

    /// <summary>The dense optimizers' step, from the gradients in <see cref="DenseParameters"/>.</summary>
    public void StepDense()
    {
        _bottomOptimizer.Step();
        _topOptimizer.Step();
    }

    /// <summary>The next step's sparse update, in the store, of the rows of <paramref name="rows"/> whose shard
    /// <paramref name="owned"/> selects (data-parallel ranks each update their own shards).</summary>
    public async Task UpdateRows(RowGradients rows, Func<int, bool> owned, CancellationToken ct = default)
    {
        var dim = _shape.Dim;
        var picked = Enumerable.Range(0, rows.Ids.Length).Where(n => owned(_layout.ShardOf(rows.Ids[n]))).ToArray();
        if (picked.Length == 0) return;
        var ids = new long[picked.Length];
        var gradients = new float[picked.Length * dim];
        for (int i = 0; i < picked.Length; i++)
        {
            ids[i] = rows.Ids[picked[i]];
            rows.Gradients.AsSpan(picked[i] * dim, dim).CopyTo(gradients.AsSpan(i * dim));
        }
        await _store.Update(Step + 1, ids, gradients, ct);
    }

    /// <summary>Marks the step complete: the dense step and every shard's update of it are done.</summary>
    public void CompleteStep() => Step++;

    /// <summary>Log loss, AUC and accuracy (threshold 0.5) on held-out examples.</summary>
    public async Task<(double LogLoss, double Auc, double Accuracy)> Evaluate(IReadOnlyList<CriteoExample> examples, int batchSize = 1024)
    {
        var scores = new List<(float Probability, float Label)>(examples.Count);
        for (int start = 0; start < examples.Count; start += batchSize)
        {
            var batch = examples.Skip(start).Take(batchSize).ToList();
            var (ids, positions) = Rows(batch);
            var weights = await _store.Lookup(Step, ids);
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var p = sigmoid(Logits(batch, tensor(weights, [ids.Length, _shape.Dim]), positions)).data<float>().ToArray();
            scores.AddRange(p.Zip(batch, (x, e) => (x, e.Label)));
        }
        return (ClickMetrics.LogLoss(scores), ClickMetrics.Auc(scores), scores.Average(s => (s.Probability >= 0.5f ? 1f : 0f) == s.Label ? 1.0 : 0.0));
    }

    /// <summary>The dense MLPs with their optimizer state and the step (the embedding rows are in their store).</summary>
    public byte[] CaptureDense()
    {
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms);
        w.Write(Step);
        foreach (var part in new[] { MemberCheckpoint.Capture(_bottom, _bottomOptimizer, 0, Step), MemberCheckpoint.Capture(_top, _topOptimizer, 0, Step) })
        {
            w.Write(part.Length);
            w.Write(part);
        }
        return ms.ToArray();
    }

    public void RestoreDense(byte[] state)
    {
        using var r = new BinaryReader(new MemoryStream(state));
        Step = r.ReadInt64();
        MemberCheckpoint.Restore(r.ReadBytes(r.ReadInt32()), _bottom, _bottomOptimizer, 0);
        MemberCheckpoint.Restore(r.ReadBytes(r.ReadInt32()), _top, _topOptimizer, 0);
    }

    public void Dispose()
    {
        _bottomOptimizer.Dispose();
        _topOptimizer.Dispose();
        _bottom.Dispose();
        _top.Dispose();
        _lower.Dispose();
    }
}

namespace Orchestrator.Core.Recommendation;

/// <summary>Where a DLRM's embedding rows live: looked up and updated sparsely, only the rows a batch touches.</summary>
public interface IEmbeddingStore
{
    /// <summary>The weights of rows <paramref name="ids"/> (distinct), dim floats each, row after row, for computing
    /// step <paramref name="step"/>.</summary>
    ValueTask<float[]> Lookup(long step, IReadOnlyList<long> ids, CancellationToken ct = default);

    /// <summary>Applies step <paramref name="step"/>'s gradients of rows <paramref name="ids"/> (Adagrad, with the
    /// per-row state kept beside the weights). A retried step is not applied twice.</summary>
    ValueTask Update(long step, IReadOnlyList<long> ids, float[] gradients, CancellationToken ct = default);
}

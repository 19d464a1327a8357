namespace Orchestrator.Core.Recommendation;

/// <summary>The usual metrics of click prediction.</summary>
public static class ClickMetrics
{
    /// <summary>Mean binary cross-entropy of predicted probabilities (clamped to [1e-7, 1 − 1e-7]).</summary>
    public static double LogLoss(IReadOnlyList<(float Probability, float Label)> scores) =>
        scores.Average(s =>
        {
            var p = Math.Clamp(s.Probability, 1e-7, 1 - 1e-7);
            return -(s.Label * Math.Log(p) + (1 - s.Label) * Math.Log(1 - p));
        });

    /// <summary>Area under the ROC curve: the probability that a random positive scores above a random negative
    /// (ties count half), by ranks (Mann–Whitney).</summary>
    public static double Auc(IReadOnlyList<(float Probability, float Label)> scores)
    {
        var ordered = scores.OrderBy(s => s.Probability).ToList();
        double positives = ordered.Count(s => s.Label > 0.5f), negatives = ordered.Count - positives;
        if (positives == 0 || negatives == 0) return double.NaN;
        double rankSum = 0;
        for (int i = 0; i < ordered.Count;)
        {
            int j = i;
            while (j < ordered.Count && ordered[j].Probability == ordered[i].Probability) j++;
            var averageRank = (i + 1 + j) / 2.0; // ranks i+1..j share their mean
            for (int t = i; t < j; t++) if (ordered[t].Label > 0.5f) rankSum += averageRank;
            i = j;
        }
        return (rankSum - positives * (positives + 1) / 2) / (positives * negatives);
    }
}

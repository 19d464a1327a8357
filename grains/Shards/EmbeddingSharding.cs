using Orchestrator.Core.Specs;

namespace Orchestrator.Grains;

/// <summary>Turns a recommendation job's embedding spec into its shards' configuration for the cluster it runs on.</summary>
public static class EmbeddingSharding
{
    /// <summary>
    /// Coding groups of k data + r parity shards (k not given: as many as the live silos allow beside r parities,
    /// 2 to 4), shards two per group unless given. Fewer live silos than shards in a group means less protection,
    /// which the job's embedding event says (see <see cref="JobEventText.Embedding"/>).
    /// </summary>
    public static ShardConfig Plan(string jobId, JobSpec spec, int liveSilos)
    {
        var e = spec.Embedding ?? throw new ArgumentException("not a recommendation job");
        var ft = e.FaultTolerance;
        int k, r = ft.Mode == FaultToleranceMode.ErasureCoding ? ft.R : 0;
        if (r == 0) k = e.Shards > 0 ? e.Shards : 4; // no parity: one group of all shards
        else
        {
            k = ft.K > 0 ? ft.K : Math.Clamp(liveSilos - r, 2, 4);
            if (ft.K == 0 && e.Shards > 0) while (e.Shards % k != 0) k--;
        }
        var shards = e.Shards > 0 ? e.Shards : 2 * k;
        return new ShardConfig(jobId, k, r, shards, spec.Model.Dim, 26L * spec.Model.TableRows, spec.Train.Seed, (float)e.Lr,
            ft.Mode == FaultToleranceMode.Checkpoint ? ft.Interval : 0);
    }
}

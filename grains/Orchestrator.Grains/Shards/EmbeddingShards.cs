using Orchestrator.Core.Specs;

namespace Orchestrator.Grains;

/// <summary>Turns a recommendation job's embedding spec into its shards' configuration for the cluster it runs on.</summary>
public static class EmbeddingShards
{
    /// <summary>
    /// Coding groups of k data + r parity shards (k not given: as many as the live silos allow beside r parities,
    /// 2 to 4), shards two per group unless given. Returns the configuration and a sentence for the job's events,
    /// which says so when there are fewer live silos than shards in a group (less protection, never silently).
    /// </summary>
    public static (ShardConfig Config, string Description) Resolve(string jobId, JobSpec spec, int liveSilos)
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
        var config = new ShardConfig(jobId, k, r, shards, spec.Model.Dim, 26L * spec.Model.TableRows, spec.Train.Seed, (float)e.Lr,
            ft.Mode == FaultToleranceMode.Checkpoint ? ft.Interval : 0);
        var tables = $"26 tables × {spec.Model.TableRows:N0} rows × dim {spec.Model.Dim} in {shards} shard grains";
        var description = ft.Mode == FaultToleranceMode.Checkpoint
            ? $"embedding: {tables}, checkpointed every {ft.Interval} steps (a lost shard rolls the job back to the last checkpoint)"
            : r == 0
            ? $"embedding: {tables}, no parity (a lost silo fails the job)"
            : $"embedding: {tables}, {config.Groups} coding group(s) of k = {k} data + r = {r} parity shards ({(r == 1 ? "XOR" : "Reed–Solomon")}), each shard of a group on its own silo";
        if (r > 0 && liveSilos < k + r)
            description += $"; only {liveSilos} live silo(s) for {k + r} shards per group: some shards share a silo, and a failure there can lose more than r (add silos for full protection)";
        return (config, description);
    }
}

namespace Orchestrator.Core.Reliability;

/// <summary>
/// The study's reliability model, and the checkpoint-interval rules it builds on. A job on N nodes fails at
/// N·r_f per day (r_f: failures per node-day); each failure costs the restart overhead u0 plus, on average, half a
/// checkpoint interval of lost work; each checkpoint costs its write time w. Times are in any one unit (the
/// callers use minutes or seconds); rates are per that unit.
/// </summary>
public static class ReliabilityModel
{
    /// <summary>The study's failure rates per 1,000 node-days: RSC-1 (16k GPUs, general) and RSC-2 (8k GPUs, vision).</summary>
    public const double Rsc1PerThousandNodeDays = 6.50, Rsc2PerThousandNodeDays = 2.34;

    public const int GpusPerNode = 8;

    /// <summary>Mean time to failure of a job on <paramref name="nodes"/> nodes: 1 / (N·r_f).</summary>
    public static TimeSpan JobMttf(double nodes, double failuresPerNodeDay) =>
        TimeSpan.FromDays(1 / (nodes * failuresPerNodeDay));

    /// <summary>
    /// E[ETTR] ≈ [1 − N·r_f·(u0 + Δt/2)] / (1 + w/Δt): the expected fraction of a job's wall time that is
    /// productive, for checkpoints every <paramref name="interval"/> that take <paramref name="write"/> and a
    /// restart overhead <paramref name="restart"/> per failure. Clamped at 0 (failures faster than progress).
    /// </summary>
    public static double ExpectedEttr(double nodes, double failuresPerNodeDay, TimeSpan interval, TimeSpan write, TimeSpan restart)
    {
        var perMinute = nodes * failuresPerNodeDay / (24 * 60);
        var lost = perMinute * (restart.TotalMinutes + interval.TotalMinutes / 2);
        return Math.Max(0, (1 - lost) / (1 + write.TotalMinutes / interval.TotalMinutes));
    }

    /// <summary>
    /// E[ETTR] with erasure-coded recovery: no work is lost (no rollback), each failure costs only the rebuild (and
    /// detection) time, and nothing is written periodically.
    /// </summary>
    public static double ExpectedEttrErasureCoded(double nodes, double failuresPerNodeDay, TimeSpan recovery) =>
        Math.Max(0, 1 - nodes * failuresPerNodeDay / (24 * 60) * recovery.TotalMinutes);

    /// <summary>
    /// One row of the projection: a job on <paramref name="devices"/> devices (8 per node) at
    /// <paramref name="failuresPerNodeDay"/>, checkpointing at its Daly-optimal interval (write time
    /// <paramref name="write"/>, restart <paramref name="restart"/>) or recovering by erasure-coded rebuild.
    /// </summary>
    public static Projection Project(int devices, double failuresPerNodeDay, TimeSpan write, TimeSpan restart, TimeSpan rebuild)
    {
        var nodes = Math.Max(1.0, Math.Ceiling(devices / (double)GpusPerNode));
        var mttf = JobMttf(nodes, failuresPerNodeDay);
        var interval = DalyInterval(write, mttf);
        return new(devices, nodes, mttf, interval, ExpectedEttr(nodes, failuresPerNodeDay, interval, write, restart),
            ExpectedEttrErasureCoded(nodes, failuresPerNodeDay, rebuild));
    }

    /// <summary>Young (1974): τ = √(2δM) for checkpoint cost δ and mean time between failures M.</summary>
    public static TimeSpan YoungInterval(TimeSpan checkpointCost, TimeSpan mtbf) =>
        TimeSpan.FromMinutes(Math.Sqrt(2 * checkpointCost.TotalMinutes * mtbf.TotalMinutes));

    /// <summary>Daly (2006): τ = √(2δM)·[1 + ⅓√(δ/2M) + (1/9)(δ/2M)] − δ for δ &lt; 2M, else M.</summary>
    public static TimeSpan DalyInterval(TimeSpan checkpointCost, TimeSpan mtbf)
    {
        double d = checkpointCost.TotalMinutes, m = mtbf.TotalMinutes;
        if (d >= 2 * m) return mtbf;
        var x = d / (2 * m);
        return TimeSpan.FromMinutes(Math.Sqrt(2 * d * m) * (1 + Math.Sqrt(x) / 3 + x / 9) - d);
    }
}

/// <summary>A projected job: its MTTF, Daly-optimal checkpoint interval and expected ETTR under both recoveries.</summary>
public sealed record Projection(int Devices, double Nodes, TimeSpan JobMttf, TimeSpan CheckpointInterval, double EttrCheckpoint, double EttrErasureCoded);

using Prometheus;

namespace Orchestrator.Grains;

/// <summary>
/// Measurements the grains make as things happen, in the process's Prometheus registry (a silo serves it at
/// /metrics). Each silo counts what its own activations saw; sum across silos. Cluster-wide gauges (jobs by state,
/// queue, arrays, ETTR) are read from the grains at scrape time by the silo's web host instead.
/// </summary>
public static class OrchestratorMetrics
{
    static readonly double[] Seconds = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600];

    public static readonly Histogram QueueWait = Metrics.CreateHistogram("orch_queue_wait_seconds",
        "Time a job waited in the queue before each placement (first placement and every re-placement)", new HistogramConfiguration { Buckets = Seconds });

    public static readonly Histogram SchedulingLatency = Metrics.CreateHistogram("orch_scheduling_latency_seconds",
        "Time of one placement decision by the scheduling policy (queue and capacity in, placements out)",
        new HistogramConfiguration { Buckets = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1] });

    public static readonly Histogram StepTime = Metrics.CreateHistogram("orch_step_seconds",
        "Training step time between consecutive progress reports of a job", new HistogramConfiguration { Buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5] });

    public static readonly Histogram Recovery = Metrics.CreateHistogram("orch_recovery_seconds",
        "Time from a job losing its progress (last report before the failure) to training again, by failure category",
        new HistogramConfiguration { Buckets = Seconds, LabelNames = ["category"] });
}

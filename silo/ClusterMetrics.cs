using Microsoft.Extensions.Logging;
using Orchestrator.Client;
using Orchestrator.Contracts;
using Orchestrator.Grains;
using Prometheus;

namespace Orchestrator.Silo;

/// <summary>
/// Cluster-wide gauges for /metrics, read from the grains at each scrape (every silo reports the same cluster view:
/// take max() across silos, not sum()). Event measurements (queue wait, step time, recoveries) are in
/// <see cref="OrchestratorMetrics"/>.
/// </summary>
public sealed partial class ClusterMetrics
{
    [LoggerMessage(1, LogLevel.Warning, "Cluster metrics not refreshed: {Error}")]
    static partial void LogNotRefreshed(ILogger logger, string error);

    static readonly TimeSpan ReadLimit = TimeSpan.FromSeconds(5);

    readonly Gauge _jobs = Metrics.CreateGauge("orch_jobs", "Jobs by state", "state");
    readonly Gauge _queueLength = Metrics.CreateGauge("orch_queue_length", "Jobs waiting to be placed (growth requests of running jobs excluded)");
    readonly Gauge _oldestWait = Metrics.CreateGauge("orch_queue_oldest_wait_seconds", "How long the longest-waiting queued job has been waiting in total");
    readonly Gauge _nodes = Metrics.CreateGauge("orch_nodes", "GPU nodes by health", "health");
    readonly Gauge _arrays = Metrics.CreateGauge("orch_arrays", "Arrays (jobs fused on one device; a job alone is width 1) by width", "width");
    readonly Gauge _arrayUtilization = Metrics.CreateGauge("orch_array_utilization_ratio", "Mean over arrays of members still training / array width");
    readonly Gauge _arraySamples = Metrics.CreateGauge("orch_array_samples_per_second", "Training throughput of all arrays together");
    readonly Counter _incidents = Metrics.CreateCounter("orch_incidents_total", "Incidents in the cluster's log by failure category", "category");
    readonly Gauge _clusterEttr = Metrics.CreateGauge("orch_ettr_ratio", "Productive training time over wall time, all jobs together (the study's ETTR)");
    readonly Gauge _jobEttr = Metrics.CreateGauge("orch_job_ettr_ratio", "ETTR of each job that has not ended", "job");
    readonly Gauge _jobTime = Metrics.CreateGauge("orch_job_time_seconds", "Wall time of all jobs by how it was spent", "kind");
    readonly ClusterQueries _queries;
    readonly ILogger _log;
    HashSet<string> _labelledJobs = [], _labelledWidths = [];

    public ClusterMetrics(ClusterQueries queries, ILogger<ClusterMetrics> log)
    {
        (_queries, _log) = (queries, log);
        // So that the event histograms are exported (at zero) before their first observation.
        System.Runtime.CompilerServices.RuntimeHelpers.RunClassConstructor(typeof(OrchestratorMetrics).TypeHandle);
        Metrics.DefaultRegistry.AddBeforeCollectCallback(Refresh);
    }

    async Task Refresh(CancellationToken ct)
    {
        try { await Read().WaitAsync(ReadLimit, ct); }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // The scrape still answers (with the last values); the log says why they are stale.
            LogNotRefreshed(_log, e.GetBaseException().Message);
        }
    }

    async Task Read()
    {
        var (jobs, scheduler, nodes, arrays) = (await _queries.Jobs(), await _queries.Scheduler(), await _queries.Nodes(), await _queries.Arrays());
        foreach (var state in Enum.GetValues<JobState>()) _jobs.WithLabels(state.ToString()).Set(jobs.Count(j => j.State == state));
        _queueLength.Set(scheduler.Queue.Count(q => !q.Growth));
        _oldestWait.Set(jobs.Where(j => j.State.IsQueued()).Select(j => j.Time?.QueueingSeconds ?? 0).DefaultIfEmpty(0).Max());
        foreach (var health in Enum.GetValues<NodeHealth>()) _nodes.WithLabels(health.ToString()).Set(nodes.Count(n => n.Health == health));

        var widths = arrays.GroupBy(a => a.Width.ToString()).ToDictionary(g => g.Key, g => g.Count());
        foreach (var gone in _labelledWidths.Except(widths.Keys)) _arrays.RemoveLabelled(gone);
        foreach (var (width, count) in widths) _arrays.WithLabels(width).Set(count);
        _labelledWidths = widths.Keys.ToHashSet();
        _arrayUtilization.Set(arrays.Count > 0 ? arrays.Average(a => a.Utilization) : 0);
        _arraySamples.Set(arrays.Sum(a => a.SamplesPerSecond));

        // Counts only: the log as it is, without reading every job it names.
        var incidents = await _queries.IncidentList(100_000);
        foreach (var g in incidents.GroupBy(i => i.Category)) _incidents.WithLabels(g.Key.ToString()).IncTo(g.Count());

        var timed = jobs.Where(j => j.Time is not null).Select(j => j.Time!).ToList();
        var wall = timed.Sum(t => t.WallSeconds);
        _clusterEttr.Set(wall > 0 ? timed.Sum(t => t.ProductiveSeconds) / wall : 0);
        foreach (var (kind, seconds) in new (string, double)[]
                 {
                     ("productive", timed.Sum(t => t.ProductiveSeconds)), ("queueing", timed.Sum(t => t.QueueingSeconds)),
                     ("starting", timed.Sum(t => t.StartingSeconds)), ("detection", timed.Sum(t => t.DetectionSeconds)),
                     ("recovery", timed.Sum(t => t.RecoverySeconds)), ("lost_progress", timed.Sum(t => t.LostProgressSeconds)),
                 })
            _jobTime.WithLabels(kind).Set(seconds);
        var live = jobs.Where(j => !j.State.IsTerminal() && j.Time is not null).ToDictionary(j => j.JobId, j => j.Time!.Ettr);
        foreach (var gone in _labelledJobs.Except(live.Keys)) _jobEttr.RemoveLabelled(gone);
        foreach (var (job, ettr) in live) _jobEttr.WithLabels(job).Set(ettr);
        _labelledJobs = live.Keys.ToHashSet();
    }
}

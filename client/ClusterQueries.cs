using Orchestrator.Contracts;
using Orchestrator.Core.Reliability;

namespace Orchestrator.Client;

/// <summary>
/// Read-only views of the cluster assembled from its grains, shared by the silo's web API, its Prometheus
/// metrics and the CLI. Every call only reads.
/// </summary>
public sealed class ClusterQueries(IGrainFactory grains)
{
    /// <summary>Defaults for the projections where the cluster has measured nothing (from 'orch bench ecrm').</summary>
    public static readonly TimeSpan DefaultCheckpointWrite = TimeSpan.FromSeconds(2.1), DefaultRestart = TimeSpan.FromSeconds(7.9), DefaultRebuild = TimeSpan.FromSeconds(3.9);

    public static readonly int[] DefaultProjectionDevices = [8, 64, 512, 4096, 16_384, 100_000];

    public static readonly IReadOnlyList<StudyNumbers> Study =
    [
        new("RSC-1 (Meta)", 16_384, ReliabilityModel.Rsc1PerThousandNodeDays, ReliabilityModel.JobMttf(2048, ReliabilityModel.Rsc1PerThousandNodeDays / 1000).TotalHours),
        new("RSC-2 (Meta)", 8_192, ReliabilityModel.Rsc2PerThousandNodeDays, ReliabilityModel.JobMttf(2048, ReliabilityModel.Rsc2PerThousandNodeDays / 1000).TotalHours),
    ];

    public Task<IReadOnlyList<JobInfo>> Jobs() => grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).List();

    public Task<SchedulerInfo> Scheduler() => grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).GetInfo();

    public async Task<IReadOnlyList<NodeInfo>> Nodes()
    {
        var ids = (await Scheduler()).Nodes;
        return await Task.WhenAll(ids.OrderBy(n => n, StringComparer.Ordinal).Select(n => grains.GetGrain<INodeGrain>(n).GetInfo()));
    }

    public async Task<JobDetail> Job(string jobId)
    {
        // Asked of the index first: an id nobody submitted (or a random one from a crawler) never activates a grain.
        if (jobId.Length > 256 || !await grains.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).Contains(jobId))
            throw new KeyNotFoundException($"no job '{(jobId.Length > 64 ? jobId[..64] + "…" : jobId)}'");
        var job = grains.GetGrain<IJobGrain>(jobId);
        var info = await job.GetInfo();
        var (events, history) = (await job.GetEvents(), await job.GetHistory());
        var incidents = (await IncidentList(AllIncidents)).Where(i => i.Jobs.Contains(jobId))
            .Select(i => new IncidentView(i, [Impact(jobId, i, history)])).ToList();
        return new JobDetail(info, events, history, incidents);
    }

    public async Task<IReadOnlyList<ArrayView>> Arrays()
    {
        var (nodes, jobs) = (await Nodes(), (await Jobs()).ToDictionary(j => j.JobId));
        return nodes.SelectMany(n => n.Assignments.Select(a => (Node: n, Assignment: a)))
            .GroupBy(x => x.Assignment.ArrayId)
            .Select(g =>
            {
                var first = g.First().Assignment;
                var members = g.Select(x => jobs.TryGetValue(x.Assignment.JobId, out var j)
                        ? new ArrayMember(j.JobId, j.Name, j.State, j.Progress?.Step ?? 0, j.Progress?.TotalSteps ?? 0, j.State == JobState.Running ? j.Progress?.SamplesPerSecond ?? 0 : 0)
                        : new ArrayMember(x.Assignment.JobId, "", JobState.Pending, 0, 0, 0))
                    .DistinctBy(m => m.JobId).ToList();
                var training = members.Count(m => m.State is JobState.Running or JobState.Scheduled);
                // A fused array's members report the array's shared throughput; a gang's ranks are separate arrays.
                var samples = members.Where(m => m.State == JobState.Running).Sum(m => m.SamplesPerSecond);
                return new ArrayView(first.ArrayId, first.NodeId, first.Device, first.ArrayWidth, members, samples, first.ArrayWidth > 0 ? training / (double)first.ArrayWidth : 0);
            })
            .OrderBy(a => a.NodeId, StringComparer.Ordinal).ThenBy(a => a.Device, StringComparer.Ordinal).ToList();
    }

    /// <summary>The latest <paramref name="max"/> incidents, each with its cost to the jobs it names.</summary>
    public async Task<IReadOnlyList<IncidentView>> Incidents(int max)
    {
        var incidents = await IncidentList(max);
        var histories = new Dictionary<string, JobHistory?>();
        var views = new List<IncidentView>();
        foreach (var i in incidents)
        {
            var impacts = new List<IncidentJobImpact>();
            foreach (var jobId in i.Jobs)
            {
                if (!histories.TryGetValue(jobId, out var h))
                {
                    try { h = await grains.GetGrain<IJobGrain>(jobId).GetHistory(); }
                    catch (KeyNotFoundException) { h = null; }
                    histories[jobId] = h;
                }
                if (h is not null) impacts.Add(Impact(jobId, i, h));
            }
            views.Add(new IncidentView(i, impacts));
        }
        return views;
    }

    /// <summary>
    /// Measured failure rate (infrastructure failures per node-day of the nodes' time in the cluster), MTTF per
    /// node and category, each job's ETTR, and the study's projections at this cluster's rate and at the study's.
    /// Without a measured recovery, the restart overhead is <see cref="DefaultRestart"/>.
    /// </summary>
    public async Task<ReliabilityReport> Reliability(IReadOnlyList<int>? devices = null, TimeSpan? checkpointWrite = null, TimeSpan? restart = null, TimeSpan? rebuild = null)
    {
        var now = DateTime.UtcNow;
        var (nodes, jobs, incidents) = (await Nodes(), await Jobs(), await Incidents(AllIncidents));
        var nodeTime = nodes.Where(n => n.FirstSeen is not null).ToDictionary(n => n.NodeId, n => now - n.FirstSeen!.Value);
        var failures = incidents.Select(v => new FailureRecord(v.Incident.At, v.Incident.Category, v.Incident.NodeId));
        var measured = MeasuredReliability.Measure(nodeTime, failures);
        var recoveries = incidents.SelectMany(v => v.Jobs).Where(j => j.RecoverySeconds is not null).Select(j => j.RecoverySeconds!.Value).Order().ToList();
        double? medianRecovery = recoveries.Count > 0 ? recoveries[recoveries.Count / 2] : null;
        var (w, u0, rb) = (checkpointWrite ?? DefaultCheckpointWrite, restart ?? (medianRecovery is { } m ? TimeSpan.FromSeconds(m) : DefaultRestart), rebuild ?? DefaultRebuild);
        var counts = devices is { Count: > 0 } ? devices : DefaultProjectionDevices;
        ProjectionSet Set(string source, double perThousand) =>
            new(source, perThousand, counts.Select(d => ReliabilityModel.Project(d, perThousand / 1000, w, u0, rb)).ToList());
        var sets = new List<ProjectionSet>();
        if (measured.Failures > 0) sets.Add(Set("this cluster (measured)", measured.FailuresPerNodeDay * 1000));
        sets.Add(Set("RSC-1 (the study)", ReliabilityModel.Rsc1PerThousandNodeDays));
        sets.Add(Set("RSC-2 (the study)", ReliabilityModel.Rsc2PerThousandNodeDays));
        return new ReliabilityReport(now, measured.NodeDays, measured.Failures, measured.FailuresPerNodeDay * 1000, measured.ClusterMttf?.TotalHours,
            measured.Nodes, measured.Categories, measured.Counts.Where(c => c.Value > 0).ToDictionary(c => c.Key, c => c.Value),
            jobs.Where(j => j.Time is not null).Select(j => new JobEttr(j.JobId, j.Name, j.State, j.Time!)).ToList(),
            medianRecovery, w, u0, rb, sets, Study);
    }

    /// <summary>The whole log (it keeps at most this many).</summary>
    const int AllIncidents = 10_000;

    /// <summary>The latest <paramref name="max"/> incidents as logged, without their cost to jobs (no job reads).</summary>
    public Task<IReadOnlyList<Incident>> IncidentList(int max) => grains.GetGrain<IIncidentLogGrain>(SchedulerKeys.Cluster).List(max);

    static IncidentJobImpact Impact(string jobId, Incident i, JobHistory h)
    {
        // The failure happened when it was detected minus the detection time.
        var failedAt = i.At - TimeSpan.FromSeconds(i.DetectionSeconds ?? 0);
        var impact = IncidentImpact.Of(failedAt, h.Marks.Select(m => m.ToPhaseMark()));
        return new IncidentJobImpact(jobId, impact.Recovery?.TotalSeconds, impact.LostSteps);
    }
}

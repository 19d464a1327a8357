using Orchestrator.Cli.Jobs;
using Orchestrator.Core.Reliability;

namespace Orchestrator.Cli.Chaos;

/// <summary>
/// Scores a chaos run from what the runner observed and what the cluster recorded: per injected fault its detection
/// and recovery time and the steps lost, per job its outcome, and pass/fail for each of the invariants every run
/// must keep (jobs end well, steps never go backwards, erasure-coded jobs lose nothing and end bit-identical to a
/// failure-free run, no double placement, queue and nodes agree with the jobs, state reads back, every crash is in
/// the incident log, coding groups spread out again).
/// </summary>
public sealed class ChaosJudge(ChaosScenario scenario, int seed, IReadOnlyList<InjectedFault> faults, IReadOnlyDictionary<string, JobWatch> jobs,
    IReadOnlyList<string> doubleAssignments, Action<string> progress)
{
    static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);

    /// <summary>Trains every succeeded erasure-coded job again without faults (same spec, same seed) and compares
    /// their embedding tables byte for byte; returns what differs.</summary>
    async Task<List<string>> CompareWithFailureFreeRuns(IGrainFactory grains, CancellationToken ct)
    {
        var differences = new List<string>();
        foreach (var job in jobs.Values.Where(j => j.ErasureCoded && !j.HitOnItsWorker && j.Info?.State == JobState.Succeeded).ToList())
        {
            // Dropped or slowed calls can get a rank removed from a data-parallel membership, and a device freed by
            // a fault can let a rank join: the job then trains on with another number of ranks, a different (and
            // correct) computation, so it is not compared either.
            var events = await grains.GetGrain<IJobGrain>(job.Id).GetEvents().WaitAsync(ct);
            if (events.Any(e => e.Kind == JobEventKind.RankRemoved))
            {
                job.HitOnItsWorker = true;
                continue;
            }
            if (events.Any(e => e.Kind == JobEventKind.RanksJoined))
            {
                job.NotCompared = "a rank joined it mid-run (it trained with more ranks from then on)";
                continue;
            }
            progress($"{job.Id}: the same job again without faults, to compare its tables");
            var id = (await JobSubmitter.SubmitAll(grains, [job.Spec], ct))[0];
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(scenario.Timeout);
            JobInfo reference;
            while (!(reference = await grains.GetGrain<IJobGrain>(id).GetInfo().WaitAsync(ct)).State.IsTerminal())
            {
                if (DateTime.UtcNow > deadline) { differences.Add($"{job.Id}: the failure-free run did not end in time"); break; }
                await Task.Delay(Poll, ct);
            }
            if (reference.State != JobState.Succeeded || job.Info!.Shards is not { } mine || reference.Shards is not { } theirs)
            {
                differences.Add($"{job.Id}: the failure-free run {reference.State} {reference.Failure?.Message}");
                continue;
            }
            // The failure-free run starts on an idle cluster: a gang that formed there with another number of ranks
            // computed something else.
            static int? Formed(IEnumerable<JobEvent> e) => e.FirstOrDefault(x => x.Kind == JobEventKind.GangFormed)?.Ranks;
            var referenceEvents = await grains.GetGrain<IJobGrain>(id).GetEvents().WaitAsync(ct);
            if (Formed(events) != Formed(referenceEvents))
            {
                job.NotCompared = $"its gang formed with {Formed(events)} ranks, the failure-free run's with {Formed(referenceEvents)}";
                continue;
            }
            for (int shard = 0; shard < mine.Shards; shard++)
            {
                var a = await grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(mine.JobId, shard / mine.K, shard % mine.K)).Copy(mine);
                var b = await grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(theirs.JobId, shard / theirs.K, shard % theirs.K)).Copy(theirs);
                if (!a.Bytes.AsSpan().SequenceEqual(b.Bytes)) differences.Add($"{job.Id}: shard {shard} differs from the failure-free run");
            }
            if (differences.Count == 0) progress($"{job.Id}: {mine.Shards} shards bit-identical to the failure-free run {id}");
        }
        return differences;
    }

    /// <summary>
    /// Coding groups of erasure-coded jobs with two members on one live silo although at least k + r silos live: a
    /// silo that joined should have received one of them (given up to 20 s, since joins may be recent).
    /// </summary>
    async Task<List<string>> CrowdedGroups(IGrainFactory grains)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        var groups = jobs.Values.Where(j => j.ErasureCoded && j.Info?.Shards is not null)
            .SelectMany(j => Enumerable.Range(0, j.Info!.Shards!.Groups).Select(g => (Key: $"{j.Id}/{g}", Members: j.Info.Shards!.K + j.Info.Shards.R))).ToList();
        while (true)
        {
            var live = (await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Keys.Select(s => s.ToParsableString()).ToHashSet();
            var crowded = new List<string>();
            foreach (var (key, members) in groups.Where(g => live.Count >= g.Members))
            {
                var placements = (await grains.GetGrain<ICodingGroupGrain>(key).Placements())
                    .ToDictionary(kv => kv.Key, kv => kv.Value.ToParsableString());
                if (!Core.Coding.GroupSpread.IsSpread(placements, live))
                    crowded.Add($"{key}: {string.Join(", ", placements.OrderBy(p => p.Key).Select(p => $"{p.Key}@{p.Value}"))} with {live.Count} silos live");
            }
            if (crowded.Count == 0 || DateTime.UtcNow > deadline) return crowded;
            await Task.Delay(Poll);
        }
    }

    public async Task<ChaosReport> Score(IGrainFactory grains, bool timedOut, double seconds, CancellationToken ct)
    {
        var differences = timedOut ? [] : await CompareWithFailureFreeRuns(grains, ct);
        // Let the last reports and placements settle before checking that queue, nodes and jobs agree.
        await Task.Delay(TimeSpan.FromSeconds(3));
        var unreadable = new List<string>();
        foreach (var job in jobs.Values)
        {
            try
            {
                job.Info = await grains.GetGrain<IJobGrain>(job.Id).GetInfo();
                await grains.GetGrain<IJobGrain>(job.Id).GetEvents();
            }
            catch (Exception e) { unreadable.Add($"{job.Id}: {e.GetBaseException().Message}"); }
        }
        foreach (var job in jobs.Values.Where(j => j.StepBack is not null)) job.Backwards.Add($"{job.StepBack!.Value.From} → {job.StepBack.Value.To} at {job.StepBack.Value.At:F1} s, never undone");
        await CountStepsLost(grains);
        var crowded = await CrowdedGroups(grains);
        var recorded = await grains.GetGrain<IIncidentLogGrain>(SchedulerKeys.Cluster).List(10_000);
        // Every crash the run injected must be in the cluster's own incident log (a killed worker: its node lost, or
        // its restart seen; a hang longer than the node timeout: its node lost).
        var unrecorded = faults.Where(i => i.Error is null && i.Detected is not null).Where(i => i.Kind switch
        {
            ChaosFault.KillSilo => !recorded.Any(r => r.Kind == IncidentKind.SiloCrashed && r.Silo == i.Target),
            ChaosFault.KillWorker or ChaosFault.HangWorker => !recorded.Any(r => r.Kind is IncidentKind.NodeLost or IncidentKind.WorkerRestarted && r.NodeId == i.Target && r.At >= i.AtUtc),
            _ => false,
        }).Select(i => $"{i.Fault} at {i.At:F1} s").ToList();
        var recordedCounts = string.Join(", ", recorded.GroupBy(r => r.Category).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} {g.Count()}"));
        var scheduler = await grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).GetInfo();
        var nodes = await Task.WhenAll(scheduler.Nodes.Select(n => grains.GetGrain<INodeGrain>(n).GetInfo()));
        var ended = jobs.Values.Where(j => j.Info?.State.IsTerminal() == true).Select(j => j.Id).ToHashSet();
        var disagreements = scheduler.Queue.Where(q => ended.Contains(q.JobId)).Select(q => $"{q.JobId} ended but is queued")
            .Concat(nodes.SelectMany(n => n.Assignments.Where(a => ended.Contains(a.JobId)).Select(a => $"{a.JobId} ended but is assigned on {n.NodeId}")))
            .ToList();
        // A job may fail for a cause of its own (non-finite values, bad data or spec), never because a component died.
        static bool OwnCause(JobFailure? failure) => failure is not null && FailureTaxonomy.IsJobsOwn(failure.Cause);
        var badEnds = jobs.Values.Where(j => j.Info?.State != JobState.Succeeded && !(j.Info?.State == JobState.Failed && OwnCause(j.Info.Failure)))
            .Select(j => $"{j.Id}: {j.Info?.State.ToString() ?? "unknown"} {j.Info?.Failure?.Message}").ToList();
        var ecLost = jobs.Values.Where(j => j.ErasureCoded && !j.HitOnItsWorker && (j.Info?.Recoveries > 0 || j.Backwards.Count > 0)).Select(j => $"{j.Id}: {j.Info?.Recoveries} recoveries").ToList();
        var exempt = string.Join("; ", jobs.Values.Where(j => j.ErasureCoded && j.HitOnItsWorker).Select(j => $"{j.Id} not judged: a worker fault hit its node or a rank left its membership"));
        var notCompared = string.Join("; ", jobs.Values.Where(j => j.NotCompared is not null).Select(j => $"{j.Id} not compared: {j.NotCompared}"));
        static string Join(params string[] parts) => string.Join("; ", parts.Where(p => p.Length > 0));
        var invariants = new List<(string, bool, string)>
        {
            ("every job ends Succeeded, or Failed with a cause of its own (not a lost component)", badEnds.Count == 0 && !timedOut,
                timedOut ? $"timed out after {seconds:F0} s: {string.Join("; ", badEnds)}" : string.Join("; ", badEnds)),
            ("no data-parallel job's step counter goes backwards (unless it lost every rank and restarted)", jobs.Values.All(j => j.Backwards.Count == 0),
                string.Join("; ", jobs.Values.Where(j => j.Backwards.Count > 0).Select(j => $"{j.Id}: {string.Join(", ", j.Backwards)}"))),
            ("erasure-coded jobs lose no step (no rollback, no restart)", ecLost.Count == 0, Join(string.Join("; ", ecLost), exempt)),
            ("erasure-coded jobs end bit-identical to a failure-free run with the same seed", differences.Count == 0 && !timedOut,
                timedOut ? "not compared: the run timed out" : Join(string.Join("; ", differences), exempt, notCompared)),
            ("no assignment is placed twice at once", doubleAssignments.Count == 0, string.Join("; ", doubleAssignments.Distinct().Take(5))),
            ("the queue and the nodes agree with the jobs' states", disagreements.Count == 0, string.Join("; ", disagreements)),
            ("every job's state reads back whole from the store", unreadable.Count == 0, string.Join("; ", unreadable)),
            ("every detected crash is in the cluster's incident log", unrecorded.Count == 0, Join(string.Join("; ", unrecorded), $"recorded: {recordedCounts}")),
            ("erasure-coded groups end with no two members on one live silo, where enough silos live", crowded.Count == 0, string.Join("; ", crowded)),
        };
        var faultOutcomes = faults.Select(i => new ChaosReport.FaultOutcome(i.At, i.Kind, i.Fault.ToString(), i.Target, i.Error, i.Detectable, i.Detected, i.Recovered, i.StepsLost)).ToList();
        var jobOutcomes = jobs.Values.Select(j => new ChaosReport.JobOutcome(j.Id, j.Info?.State, j.Info?.Result?.Steps ?? j.LastStep, j.Info?.Result,
            j.Info?.Recoveries ?? 0, j.Info?.Time, j.Info?.Failure)).ToList();
        var queries = new ClusterQueries(grains);
        var logged = await queries.Incidents(10_000);
        var histories = new List<ChaosReport.JobReport>();
        foreach (var j in jobs.Values.Where(j => j.Info is not null))
            histories.Add(new ChaosReport.JobReport(j.Id, j.Info!.State, j.Info.Time, await grains.GetGrain<IJobGrain>(j.Id).GetHistory()));
        var injected = faults.Count(i => i.Error is null);
        var summary = $"{injected} fault(s) injected, {jobs.Values.Count(j => j.Info?.State == JobState.Succeeded)}/{jobs.Count} jobs succeeded, " +
                      $"steps lost {faults.Sum(i => i.StepsLost)}, data lost {ecLost.Count + differences.Count + badEnds.Count(b => b.Contains("lost"))}, " +
                      $"{invariants.Count(i => i.Item2)}/{invariants.Count} invariants passed, {seconds:F0} s";
        return new ChaosReport(scenario.Name, seed, faultOutcomes, jobOutcomes, invariants, summary, logged, histories);
    }

    /// <summary>
    /// Steps lost per incident, from the jobs' own events (progress is sampled too coarsely to see a short redo): a
    /// start from a checkpoint (or from step 0) or a rollback after the fault costs the steps between the job's step at
    /// the fault and the step it went back to.
    /// </summary>
    async Task CountStepsLost(IGrainFactory grains)
    {
        foreach (var (incident, index) in faults.Select((i, n) => (i, n)))
        {
            var until = index + 1 < faults.Count ? faults[index + 1].AtUtc : DateTime.MaxValue;
            foreach (var (id, before) in incident.StepsAtInjection)
            {
                IReadOnlyList<JobEvent> events;
                try { events = await grains.GetGrain<IJobGrain>(id).GetEvents(); }
                catch (Exception) { continue; }
                foreach (var e in events.Where(e => e.At >= incident.AtUtc && e.At < until && e.Kind is JobEventKind.Started or JobEventKind.RolledBack))
                    incident.StepsLost = Math.Max(incident.StepsLost, before - (e.ResumeStep ?? 0));
            }
        }
    }
}

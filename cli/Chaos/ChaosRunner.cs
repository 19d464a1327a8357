using System.Diagnostics;
using Orchestrator.Core.Specs;
using Orchestrator.Grains;
using Polly;
using Spectre.Console;

namespace Orchestrator.Cli.Chaos;

/// <summary>
/// Runs a chaos scenario on a local cluster of processes started with --allow-chaos: submits its jobs, injects its
/// faults through the cluster (<see cref="IChaosGrain"/>; a Redis outage by pausing the redis-server it started),
/// replaces dead silos and workers after <see cref="ChaosScenario.RestartAfter"/>, watches every job, node and silo
/// four times a second, and scores the run: per incident its detection and recovery time and the steps lost, per
/// job its outcome, and pass/fail per invariant.
/// </summary>
public sealed class ChaosRunner(ChaosScenario scenario, int seed, Action<string> progress)
{
    static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);
    const double StaleReadGrace = 5;
    readonly Random _rng = new(seed);
    readonly ResiliencePipeline _retry = Resilience.Retry(TimeSpan.FromSeconds(30));
    readonly List<Incident> _incidents = [];
    readonly Dictionary<string, JobWatch> _jobs = [];
    readonly List<string> _doubleAssignments = [];
    string _recordedCounts = "";

    sealed class Incident(ScenarioFault fault, double at)
    {
        public ScenarioFault Fault { get; } = fault;
        public double At { get; } = at;
        public DateTime AtUtc { get; } = DateTime.UtcNow;
        public string Target { get; set; } = "";
        public string? Error { get; set; }
        /// <summary>A worker's incarnation when it was hit: a new one means its process was replaced.</summary>
        public string? Incarnation { get; set; }
        public double? Detected { get; set; }
        public double? Recovered { get; set; }
        public Dictionary<string, long> StepsAtInjection { get; } = [];
        /// <summary>Every running job's step once the fault took effect (detected, or its time was over): recovered when
        /// every one of them trained past it (or ended).</summary>
        public Dictionary<string, long>? Baseline { get; set; }
        public long StepsLost { get; set; }
        public bool Detectable => Fault.Fault is "kill-silo" or "kill-worker" or "hang-worker";

        /// <summary>When the fault's effect can be judged over: at detection for crashes and hangs, after its duration
        /// for slowdowns, call loss and outages, a second after non-finite gradients were ordered.</summary>
        public bool StillInEffect(double now) => Detectable ? Detected is null : Fault.Fault == "nan-gradients" ? now - At < 1 : now - At < Fault.For;
    }

    sealed class JobWatch(string id, JobSpec spec)
    {
        public string Id { get; } = id;
        public JobSpec Spec { get; } = spec;
        public JobInfo? Info { get; set; }
        public long LastStep { get; set; }
        /// <summary>A step back seen and not yet undone by the job's next reports.</summary>
        public (long From, long To, double At)? StepBack { get; set; }

        /// <summary>The job's recovery count when its step last moved.</summary>
        public int RecoveriesWhenAdvancing { get; set; }
        public long MaxStep { get; set; }
        public List<string> Backwards { get; } = [];
        public bool ErasureCoded => Spec.Embedding?.FaultTolerance.Mode == FaultToleranceMode.ErasureCoding;

        /// <summary>A worker fault hit a node running this job. Erasure coding protects the embedding against silo
        /// (parameter server) failures; a worker fault changes the computation (an elastic job trains on with fewer
        /// ranks, a single-worker job resumes its dense model from a checkpoint), so such a job is not compared.</summary>
        public bool HitOnItsWorker { get; set; }
        /// <summary>Why its tables are not compared with a failure-free run's (it trained with other ranks), or null.</summary>
        public string? NotCompared { get; set; }

        public bool RunsOn(string node) => Info is { } i && (i.Assignment?.NodeId == node || i.Ranks?.Any(r => r.NodeId == node) == true);
    }

    /// <param name="Logged">The cluster's own incident log over the run, with each incident's cost to the jobs it hit.</param>
    /// <param name="Histories">Each job's time and time line (the source of its ETTR).</param>
    public sealed record Report(string Scenario, int Seed, IReadOnlyList<string[]> Incidents, IReadOnlyList<string[]> Jobs,
        IReadOnlyList<(string Invariant, bool Passed, string Detail)> Invariants, string Summary,
        IReadOnlyList<IncidentView> Logged, IReadOnlyList<JobReport> Histories)
    {
        public bool Passed => Invariants.All(i => i.Passed);
    }

    public sealed record JobReport(string JobId, JobState State, JobTime? Time, JobHistory History);

    /// <param name="httpPort">Serve the first silo's pages on this port, to watch the run (null: none).</param>
    public async Task<Report> Run(CancellationToken ct, int? httpPort = null)
    {
        var shape = scenario.Cluster;
        await using var cluster = await LocalCluster.Start(shape.Silos, shape.Workers, progress, allowChaos: true, devices: shape.Devices, httpPort: httpPort);
        var grains = cluster.Grains;
        foreach (var job in scenario.Jobs.Where(j => j.Generate > 0))
        {
            var path = JobSubmitter.LoadSpecs(new FileInfo(job.File), [.. job.Set], [], checkFiles: false)[0].Data.Path;
            if (File.Exists(path)) continue;
            progress($"writing {job.Generate:N0} Criteo-format examples to {path}");
            Orchestrator.Core.Recommendation.CriteoSynth.Write(path, job.Generate, seed: 3);
        }
        var specs = scenario.Jobs.SelectMany(j => JobSubmitter.LoadSpecs(new FileInfo(j.File), [.. j.Set],
            j.Copies > 1 ? [$"train.seed={string.Join(",", Enumerable.Range(1, j.Copies))}"] : [], checkFiles: true)).ToList();
        var firstOfJob = new List<int>();
        for (int i = 0, n = 0; i < scenario.Jobs.Count; n += scenario.Jobs[i].Copies, i++) firstOfJob.Add(n);
        var ids = await JobSubmitter.SubmitAll(grains, specs, ct);
        for (int i = 0; i < ids.Count; i++) _jobs[ids[i]] = new JobWatch(ids[i], specs[i]);

        var timeline = new Queue<ScenarioFault>(scenario.Timeline(seed));
        var clock = Stopwatch.StartNew();
        double? start = null;
        var exited = new Dictionary<Process, double>();
        while (clock.Elapsed.TotalSeconds < scenario.Timeout)
        {
            ct.ThrowIfCancellationRequested();
            var now = clock.Elapsed.TotalSeconds;
            await Observe(grains, now);
            if (start is null && _jobs.Values.Any(j => j.Info?.Progress?.Step > 0))
            {
                start = now;
                progress($"training started at {now:F1} s; {timeline.Count} fault(s) to inject (seed {seed})");
            }
            while (start is not null && timeline.TryPeek(out var next) && now - start >= next.At)
                await Inject(cluster, grains, timeline.Dequeue(), now, ids, firstOfJob);
            await Detect(grains, now);
            RestartTheDead(cluster, exited, now);
            if (timeline.Count == 0 && _jobs.Values.All(j => j.Info?.State.IsTerminal() == true)) break;
            await Task.Delay(Poll, ct);
        }
        var timedOut = clock.Elapsed.TotalSeconds >= scenario.Timeout;
        var differences = timedOut ? [] : await CompareWithFailureFreeRuns(grains, ct);
        return await Score(grains, timedOut, clock.Elapsed.TotalSeconds, differences);
    }

    async Task Observe(IGrainFactory grains, double now)
    {
        foreach (var job in _jobs.Values)
        {
            try { job.Info = await grains.GetGrain<IJobGrain>(job.Id).GetInfo().WaitAsync(TimeSpan.FromSeconds(2)); }
            catch (Exception) { continue; } // a silo just died or Redis is paused: next poll
            var step = job.Info.Progress?.Step ?? 0;
            // A data-parallel job that lost every rank is requeued whole and restarts from its checkpoint (the job
            // grain counts a recovery; the steps since count as lost); any other step back is a violation.
            // A job grain that fails over while Redis is paused shows the progress it last saved until the ranks' next
            // report (about a second): a step back that the job's own reports undo within StaleReadGrace is such a read,
            // not a rollback.
            if (job.StepBack is { } back && (step >= back.From || job.Info.State.IsTerminal())) job.StepBack = null;
            else if (job.StepBack is { } seen && now - seen.At > StaleReadGrace)
            {
                job.Backwards.Add($"{seen.From} → {seen.To} at {seen.At:F1} s");
                job.StepBack = null;
            }
            if (step < job.LastStep && job.Spec.Kind == JobKind.DataParallel && job.Info.Recoveries == job.RecoveriesWhenAdvancing && job.StepBack is null)
                job.StepBack = (job.LastStep, step, now);
            if (step != job.LastStep) job.RecoveriesWhenAdvancing = job.Info.Recoveries;
            job.LastStep = step;
            job.MaxStep = Math.Max(job.MaxStep, step);
        }
        try
        {
            var scheduler = await grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).GetInfo().WaitAsync(TimeSpan.FromSeconds(2));
            var nodes = await Task.WhenAll(scheduler.Nodes.Select(n => grains.GetGrain<INodeGrain>(n).GetInfo())).WaitAsync(TimeSpan.FromSeconds(2));
            var placed = nodes.SelectMany(n => n.Assignments.Select(a => (Node: n.NodeId, a))).ToList();
            foreach (var twice in placed.GroupBy(p => (p.a.JobId, p.a.Epoch)).Where(g => g.Count() > 1))
                _doubleAssignments.Add($"{twice.Key.JobId} epoch {twice.Key.Epoch} on {string.Join(", ", twice.Select(p => p.Node))} at {now:F1} s");
            foreach (var single in placed.Where(p => !p.a.Gang).GroupBy(p => p.a.JobId).Where(g => g.Select(p => p.a.Epoch).Distinct().Count() > 1))
                _doubleAssignments.Add($"{single.Key} placed twice ({string.Join(", ", single.Select(p => $"{p.Node} epoch {p.a.Epoch}"))}) at {now:F1} s");
        }
        catch (Exception) { /* next poll */ }
    }

    async Task Inject(LocalCluster cluster, IGrainFactory grains, ScenarioFault fault, double now, IReadOnlyList<string> ids, IReadOnlyList<int> firstOfJob)
    {
        var incident = new Incident(fault, now);
        foreach (var j in _jobs.Values.Where(j => j.Info is { } i && !i.State.IsTerminal())) incident.StepsAtInjection[j.Id] = j.LastStep;
        _incidents.Add(incident);
        var chaos = grains.GetGrain<IChaosGrain>("cluster");
        var node = fault.Target == "random" ? PickWorker(cluster)
            : fault.Target.StartsWith("job:") ? NodeOf(ids[firstOfJob[int.Parse(fault.Target[4..])]])
            : fault.Target;
        if (fault.Fault is "kill-worker" or "hang-worker")
            foreach (var job in _jobs.Values.Where(j => j.RunsOn(node))) job.HitOnItsWorker = true;
        try
        {
            switch (fault.Fault)
            {
                case "kill-silo":
                    var hosts = (await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Keys.OrderBy(s => s.Endpoint.Port).ToList();
                    var silo = fault.Target == "random" ? hosts[_rng.Next(hosts.Count)] : hosts[int.Parse(fault.Target) % hosts.Count];
                    incident.Target = (await Retried(() => chaos.KillSilo(silo.ToParsableString()))).Target;
                    break;
                case "kill-worker":
                    incident.Incarnation = (await _retry.ExecuteAsync(async _ => await grains.GetGrain<INodeGrain>(node).GetInfo())).Incarnation;
                    incident.Target = (await Retried(() => chaos.FaultNode(node, new NodeFault(FaultKind.KillWorker)))).Target;
                    break;
                case "hang-worker":
                    incident.Incarnation = (await _retry.ExecuteAsync(async _ => await grains.GetGrain<INodeGrain>(node).GetInfo())).Incarnation;
                    incident.Target = (await Retried(() => chaos.FaultNode(node, new NodeFault(FaultKind.HangWorker, fault.For)))).Target;
                    break;
                case "slow-node":
                    incident.Target = (await Retried(() => chaos.FaultNode(node, new NodeFault(FaultKind.SlowNode, fault.For, DelayMs: fault.Delay)))).Target;
                    break;
                case "drop-calls":
                    incident.Target = (await Retried(() => chaos.FaultNode(node, new NodeFault(FaultKind.DropCalls, fault.For, Rate: fault.Rate)))).Target;
                    break;
                case "nan-gradients":
                    incident.Target = (await Retried(() => chaos.NanGradients(ids[firstOfJob[fault.Job]], fault.Rank, fault.Steps))).Target;
                    break;
                case "redis-outage":
                    var redis = cluster.RedisProcess!;
                    LocalCluster.Signal(redis, "STOP");
                    _ = Task.Delay(TimeSpan.FromSeconds(fault.For)).ContinueWith(_ => LocalCluster.Signal(redis, "CONT"), TaskScheduler.Default);
                    incident.Target = $"redis-server (process {redis.Id})";
                    break;
            }
        }
        catch (Exception e)
        {
            incident.Error = e.GetBaseException().Message;
        }
        progress($"{now:F1} s: {fault} → {incident.Target}{(incident.Error is null ? "" : $" (not injected: {incident.Error})")}");
    }

    /// <summary>A chaos call survives the failover of the silo that hosted the chaos grain (an earlier fault may have killed it).</summary>
    async Task<ChaosResult> Retried(Func<Task<ChaosResult>> call) => await _retry.ExecuteAsync(async _ => await call());

    string NodeOf(string jobId) => _jobs[jobId].Info is { } info
        ? info.Assignment?.NodeId ?? info.Ranks?.FirstOrDefault(r => info.Gang is { } g && g.Ranks.Count > 0 && r.Epoch == g.Ranks[0])?.NodeId ?? "w1"
        : "w1";

    string PickWorker(LocalCluster cluster)
    {
        var live = cluster.Workers.Where(w => !w.Value.HasExited).Select(w => w.Key).Order().ToList();
        return live.Count > 0 ? live[_rng.Next(live.Count)] : "w1";
    }

    async Task Detect(IGrainFactory grains, double now)
    {
        foreach (var incident in _incidents.Where(i => i.Error is null))
        {
            if (incident.Detected is null && incident.Detectable)
            {
                try
                {
                    if (incident.Fault.Fault == "kill-silo")
                    {
                        var hosts = await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: false).WaitAsync(TimeSpan.FromSeconds(2));
                        if (hosts.Any(h => h.Key.ToParsableString() == incident.Target && h.Value == SiloStatus.Dead)) incident.Detected = now - incident.At;
                    }
                    else if (await grains.GetGrain<INodeGrain>(incident.Target).GetInfo().WaitAsync(TimeSpan.FromSeconds(2)) is var node
                             && (node.Health == NodeHealth.Dead || node.Incarnation != incident.Incarnation))
                        incident.Detected = now - incident.At; // missed heartbeats, or its process was replaced
                }
                catch (Exception) { /* next poll */ }
            }
            if (incident.Baseline is null && !incident.StillInEffect(now))
                incident.Baseline = incident.StepsAtInjection.Keys.ToDictionary(id => id, id => _jobs[id].LastStep);
            if (incident.Recovered is null && incident.Baseline is { } baseline
                && baseline.All(kv => _jobs[kv.Key].LastStep > kv.Value || _jobs[kv.Key].Info!.State.IsTerminal()))
                incident.Recovered = now - incident.At;
        }
    }

    void RestartTheDead(LocalCluster cluster, Dictionary<Process, double> exited, double now)
    {
        foreach (var (port, silo) in cluster.Silos.ToList().Where(s => s.Value.HasExited))
        {
            exited.TryAdd(silo, now);
            if (now - exited[silo] < scenario.RestartAfter) continue;
            cluster.Silos.Remove(port);
            _ = cluster.StartSilo(progress);
        }
        foreach (var (node, worker) in cluster.Workers.ToList().Where(w => w.Value.HasExited))
        {
            exited.TryAdd(worker, now);
            if (now - exited[worker] < scenario.RestartAfter) continue;
            cluster.StartWorker(node, progress);
        }
    }

    /// <summary>Trains every succeeded erasure-coded job again without faults (same spec, same seed) and compares
    /// their embedding tables byte for byte; returns what differs.</summary>
    async Task<List<string>> CompareWithFailureFreeRuns(IGrainFactory grains, CancellationToken ct)
    {
        var differences = new List<string>();
        foreach (var job in _jobs.Values.Where(j => j.ErasureCoded && !j.HitOnItsWorker && j.Info?.State == JobState.Succeeded).ToList())
        {
            // Dropped or slowed calls can get a rank removed from a data-parallel membership, and a device freed by
            // a fault can let a rank join: the job then trains on with another number of ranks, a different (and
            // correct) computation, so it is not compared either.
            var events = await _retry.ExecuteAsync(async _ => await grains.GetGrain<IJobGrain>(job.Id).GetEvents(), ct);
            if (events.Any(e => e.What.Contains("rank(s) left")))
            {
                job.HitOnItsWorker = true;
                continue;
            }
            if (events.Any(e => e.What.Contains("rank(s) joined at step")))
            {
                job.NotCompared = "a rank joined it mid-run (it trained with more ranks from then on)";
                continue;
            }
            progress($"{job.Id}: the same job again without faults, to compare its tables");
            var id = (await JobSubmitter.SubmitAll(grains, [job.Spec], ct))[0];
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(scenario.Timeout);
            JobInfo reference;
            while (!(reference = await _retry.ExecuteAsync(async _ => await grains.GetGrain<IJobGrain>(id).GetInfo(), ct)).State.IsTerminal())
            {
                if (DateTime.UtcNow > deadline) { differences.Add($"{job.Id}: the failure-free run did not end in time"); break; }
                await Task.Delay(Poll, ct);
            }
            if (reference.State != JobState.Succeeded || job.Info!.Shards is not { } mine || reference.Shards is not { } theirs)
            {
                differences.Add($"{job.Id}: the failure-free run {reference.State} {reference.FailureReason}");
                continue;
            }
            // The failure-free run starts on an idle cluster: a gang that formed there with another number of ranks
            // computed something else.
            static string? Formed(IEnumerable<JobEvent> e) => e.FirstOrDefault(x => x.What.StartsWith("gang formed: ", StringComparison.Ordinal))?.What.Split(',')[0];
            var referenceEvents = await _retry.ExecuteAsync(async _ => await grains.GetGrain<IJobGrain>(id).GetEvents(), ct);
            if (Formed(events) != Formed(referenceEvents))
            {
                job.NotCompared = $"its gang formed as \"{Formed(events)}\", the failure-free run's as \"{Formed(referenceEvents)}\"";
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
        var groups = _jobs.Values.Where(j => j.ErasureCoded && j.Info?.Shards is not null)
            .SelectMany(j => Enumerable.Range(0, j.Info!.Shards!.Groups).Select(g => (Key: $"{j.Id}/{g}", Members: j.Info.Shards!.K + j.Info.Shards.R))).ToList();
        while (true)
        {
            var live = (await _retry.ExecuteAsync(async _ => await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true))).Keys.Select(s => s.ToParsableString()).ToHashSet();
            var crowded = new List<string>();
            foreach (var (key, members) in groups.Where(g => live.Count >= g.Members))
            {
                var placements = (await _retry.ExecuteAsync(async _ => await grains.GetGrain<ICodingGroupGrain>(key).Placements()))
                    .ToDictionary(kv => kv.Key, kv => kv.Value.ToParsableString());
                if (!Core.Coding.GroupSpread.IsSpread(placements, live))
                    crowded.Add($"{key}: {string.Join(", ", placements.OrderBy(p => p.Key).Select(p => $"{p.Key}@{p.Value}"))} with {live.Count} silos live");
            }
            if (crowded.Count == 0 || DateTime.UtcNow > deadline) return crowded;
            await Task.Delay(Poll);
        }
    }

    async Task<Report> Score(IGrainFactory grains, bool timedOut, double seconds, List<string> differences)
    {
        // Let the last reports and placements settle before checking that queue, nodes and jobs agree.
        await Task.Delay(TimeSpan.FromSeconds(3));
        var unreadable = new List<string>();
        foreach (var job in _jobs.Values)
        {
            try
            {
                job.Info = await _retry.ExecuteAsync(async _ => await grains.GetGrain<IJobGrain>(job.Id).GetInfo());
                await _retry.ExecuteAsync(async _ => await grains.GetGrain<IJobGrain>(job.Id).GetEvents());
            }
            catch (Exception e) { unreadable.Add($"{job.Id}: {e.GetBaseException().Message}"); }
        }
        foreach (var job in _jobs.Values.Where(j => j.StepBack is not null)) job.Backwards.Add($"{job.StepBack!.Value.From} → {job.StepBack.Value.To} at {job.StepBack.Value.At:F1} s, never undone");
        await CountStepsLost(grains);
        var crowded = await CrowdedGroups(grains);
        var recorded = await _retry.ExecuteAsync(async _ => await grains.GetGrain<IIncidentLogGrain>(SchedulerKeys.Cluster).List(10_000));
        // Every crash the run injected must be in the cluster's own incident log (a killed worker: its node lost, or
        // its restart seen; a hang longer than the node timeout: its node lost).
        var unrecorded = _incidents.Where(i => i.Error is null && i.Detected is not null).Where(i => i.Fault.Fault switch
        {
            "kill-silo" => !recorded.Any(r => r.Category == "SiloCrash" && r.Silo == i.Target),
            "kill-worker" or "hang-worker" => !recorded.Any(r => r.Category is "NodeLost" or "WorkerCrash" && r.NodeId == i.Target && r.At >= i.AtUtc),
            _ => false,
        }).Select(i => $"{i.Fault} at {i.At:F1} s").ToList();
        _recordedCounts = string.Join(", ", recorded.GroupBy(r => r.Category).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} {g.Count()}"));
        var scheduler = await _retry.ExecuteAsync(async _ => await grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).GetInfo());
        var nodes = await Task.WhenAll(scheduler.Nodes.Select(n => grains.GetGrain<INodeGrain>(n).GetInfo()));
        var ended = _jobs.Values.Where(j => j.Info?.State.IsTerminal() == true).Select(j => j.Id).ToHashSet();
        var disagreements = scheduler.Queue.Where(q => ended.Contains(q.JobId)).Select(q => $"{q.JobId} ended but is queued")
            .Concat(nodes.SelectMany(n => n.Assignments.Where(a => ended.Contains(a.JobId)).Select(a => $"{a.JobId} ended but is assigned on {n.NodeId}")))
            .ToList();
        // A job may fail for a cause of its own (non-finite values, bad data or spec), never because a component died.
        static bool OwnCause(string? reason) => reason is not null && System.Text.RegularExpressions.Regex.IsMatch(reason, "sent non-finite gradients|non-finite loss|invalid job spec|malformed lines|holds no full batch");
        var badEnds = _jobs.Values.Where(j => j.Info?.State != JobState.Succeeded && !(j.Info?.State == JobState.Failed && OwnCause(j.Info.FailureReason)))
            .Select(j => $"{j.Id}: {j.Info?.State.ToString() ?? "unknown"} {j.Info?.FailureReason}").ToList();
        var ecLost = _jobs.Values.Where(j => j.ErasureCoded && !j.HitOnItsWorker && (j.Info?.Recoveries > 0 || j.Backwards.Count > 0)).Select(j => $"{j.Id}: {j.Info?.Recoveries} recoveries").ToList();
        var exempt = string.Join("; ", _jobs.Values.Where(j => j.ErasureCoded && j.HitOnItsWorker).Select(j => $"{j.Id} not judged: a worker fault hit its node or a rank left its membership"));
        var notCompared = string.Join("; ", _jobs.Values.Where(j => j.NotCompared is not null).Select(j => $"{j.Id} not compared: {j.NotCompared}"));
        static string Join(params string[] parts) => string.Join("; ", parts.Where(p => p.Length > 0));
        var invariants = new List<(string, bool, string)>
        {
            ("every job ends Succeeded, or Failed with a cause of its own (not a lost component)", badEnds.Count == 0 && !timedOut,
                timedOut ? $"timed out after {seconds:F0} s: {string.Join("; ", badEnds)}" : string.Join("; ", badEnds)),
            ("no data-parallel job's step counter goes backwards (unless it lost every rank and restarted)", _jobs.Values.All(j => j.Backwards.Count == 0),
                string.Join("; ", _jobs.Values.Where(j => j.Backwards.Count > 0).Select(j => $"{j.Id}: {string.Join(", ", j.Backwards)}"))),
            ("erasure-coded jobs lose no step (no rollback, no restart)", ecLost.Count == 0, Join(string.Join("; ", ecLost), exempt)),
            ("erasure-coded jobs end bit-identical to a failure-free run with the same seed", differences.Count == 0 && !timedOut,
                timedOut ? "not compared: the run timed out" : Join(string.Join("; ", differences), exempt, notCompared)),
            ("no assignment is placed twice at once", _doubleAssignments.Count == 0, string.Join("; ", _doubleAssignments.Distinct().Take(5))),
            ("the queue and the nodes agree with the jobs' states", disagreements.Count == 0, string.Join("; ", disagreements)),
            ("every job's state reads back whole from the store", unreadable.Count == 0, string.Join("; ", unreadable)),
            ("every detected crash is in the cluster's incident log", unrecorded.Count == 0, Join(string.Join("; ", unrecorded), $"recorded: {_recordedCounts}")),
            ("erasure-coded groups end with no two members on one live silo, where enough silos live", crowded.Count == 0, string.Join("; ", crowded)),
        };
        var incidents = _incidents.Select(i => new[]
        {
            $"{i.At:F1}", i.Fault.ToString(), i.Target, i.Error is not null ? $"not injected: {i.Error}" : i.Detectable ? i.Detected is { } d ? $"{d:F1}" : "not detected" : "–",
            i.Recovered is { } r ? $"{r:F1}" : "–", i.StepsLost.ToString(),
        }).ToList();
        var jobs = _jobs.Values.Select(j => new[]
        {
            j.Id, j.Info?.State.ToString() ?? "?", (j.Info?.Result?.Steps ?? j.LastStep).ToString(),
            j.Info?.Result is { } res ? res.Auc is { } auc ? $"AUC {auc:F4}" : $"accuracy {res.TestAccuracy:F4}" : "–",
            (j.Info?.Recoveries ?? 0).ToString(),
            j.Info?.Time is { } t ? $"{t.Ettr:F3} (wall {t.WallSeconds:F1} s: queued {t.QueueingSeconds:F1}, starting {t.StartingSeconds:F1}, detection {t.DetectionSeconds:F1}, paused {t.RecoverySeconds:F1}, lost progress {t.LostProgressSeconds:F1})" : "–",
            j.Info?.FailureReason ?? "",
        }).ToList();
        var queries = new ClusterQueries(grains);
        var logged = await _retry.ExecuteAsync(async _ => await queries.Incidents(10_000));
        var histories = new List<JobReport>();
        foreach (var j in _jobs.Values.Where(j => j.Info is not null))
            histories.Add(new JobReport(j.Id, j.Info!.State, j.Info.Time, await _retry.ExecuteAsync(async _ => await grains.GetGrain<IJobGrain>(j.Id).GetHistory())));
        var injected = _incidents.Count(i => i.Error is null);
        var summary = $"{injected} fault(s) injected, {_jobs.Values.Count(j => j.Info?.State == JobState.Succeeded)}/{_jobs.Count} jobs succeeded, " +
                      $"steps lost {_incidents.Sum(i => i.StepsLost)}, data lost {ecLost.Count + differences.Count + badEnds.Count(b => b.Contains("lost"))}, " +
                      $"{invariants.Count(i => i.Item2)}/{invariants.Count} invariants passed, {seconds:F0} s";
        return new Report(scenario.Name, seed, incidents, jobs, invariants, summary, logged, histories);
    }

    /// <summary>
    /// Steps lost per incident, from the jobs' own events (progress is sampled too coarsely to see a short redo): a
    /// restart from a checkpoint or a rollback after the fault costs the steps between the job's step at the fault
    /// and the step it went back to.
    /// </summary>
    async Task CountStepsLost(IGrainFactory grains)
    {
        var wentBack = new System.Text.RegularExpressions.Regex(@"resuming from checkpoint at step (\d+)|started from step (0)|to the checkpoint at step (\d+)");
        foreach (var (incident, index) in _incidents.Select((i, n) => (i, n)))
        {
            var until = index + 1 < _incidents.Count ? _incidents[index + 1].AtUtc : DateTime.MaxValue;
            foreach (var (id, before) in incident.StepsAtInjection)
            {
                IReadOnlyList<JobEvent> events;
                try { events = await grains.GetGrain<IJobGrain>(id).GetEvents(); }
                catch (Exception) { continue; }
                foreach (var e in events.Where(e => e.At >= incident.AtUtc && e.At < until))
                    if (wentBack.Match(e.What) is { Success: true } m)
                        incident.StepsLost = Math.Max(incident.StepsLost, before - long.Parse(m.Groups.Cast<System.Text.RegularExpressions.Group>().Skip(1).First(g => g.Success).Value));
            }
        }
    }

    public static void Print(Report report, string file)
    {
        AnsiConsole.MarkupLine($"[bold]chaos scenario {Markup.Escape(report.Scenario)}[/], seed {report.Seed} (replay: orch chaos run {Markup.Escape(file)} --seed {report.Seed})");
        var incidents = new Table().AddColumns("at (s)", "fault", "target", "detected after (s)", "recovered after (s)", "steps lost");
        foreach (var row in report.Incidents) incidents.AddRow(row.Select(Markup.Escape).ToArray());
        AnsiConsole.Write(incidents);
        var byKind = report.Incidents.Where(r => double.TryParse(r[4], out _)).GroupBy(r => r[1].Split(' ')[0]).Select(g =>
        {
            var times = g.Select(r => double.Parse(r[4])).Order().ToList();
            var median = times.Count % 2 == 1 ? times[times.Count / 2] : (times[times.Count / 2 - 1] + times[times.Count / 2]) / 2;
            return $"{g.Key}: recovery median {median:F1} s, max {times[^1]:F1} s ({times.Count})";
        });
        foreach (var line in byKind) AnsiConsole.MarkupLine(Markup.Escape(line));
        AnsiConsole.MarkupLine("[bold]the cluster's incident log[/] (recovery: until each job it hit trained again)");
        var logged = new Table().AddColumns("time", "category", "node/silo", "jobs", "detected after (s)", "recovery (s)", "steps lost");
        foreach (var v in report.Logged)
            logged.AddRow(Markup.Escape($"{v.Incident.At.ToLocalTime():HH:mm:ss.f}"), Markup.Escape(v.Incident.Category), Markup.Escape(v.Incident.NodeId ?? v.Incident.Silo ?? ""),
                Markup.Escape(v.Incident.JobId ?? ""), v.Incident.DetectionSeconds is { } d ? $"{d:F1}" : "–",
                v.Jobs.Count > 0 ? string.Join(", ", v.Jobs.Select(j => j.RecoverySeconds is { } r ? $"{r:F1}" : "–")) : "–",
                v.Jobs.Count > 0 ? string.Join(", ", v.Jobs.Select(j => j.LostSteps)) : "–");
        AnsiConsole.Write(logged);
        var jobs = new Table().AddColumns("job", "state", "steps", "result", "recoveries", "ETTR (productive / wall time)", "failure");
        foreach (var row in report.Jobs) jobs.AddRow(row.Select(Markup.Escape).ToArray());
        AnsiConsole.Write(jobs);
        var invariants = new Table().AddColumns("invariant", "", "detail");
        foreach (var (name, passed, detail) in report.Invariants) invariants.AddRow(Markup.Escape(name), passed ? "[green]pass[/]" : "[red]FAIL[/]", Markup.Escape(detail));
        AnsiConsole.Write(invariants);
        AnsiConsole.MarkupLine((report.Passed ? "[green]PASSED[/]: " : "[red]FAILED[/]: ") + Markup.Escape(report.Summary));
    }
}

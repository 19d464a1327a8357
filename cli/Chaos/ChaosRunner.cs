using Orchestrator.Cli.Jobs;
using System.Diagnostics;
using Orchestrator.Core.Specs;

namespace Orchestrator.Cli.Chaos;

/// <summary>
/// Runs a chaos scenario on a local cluster of processes started with --allow-chaos: submits its jobs, injects its
/// faults through the cluster (<see cref="IChaosGrain"/>; a Redis outage by pausing the redis-server it started),
/// replaces dead silos and workers after <see cref="ChaosScenario.RestartAfter"/>, watches every job, node and silo
/// four times a second; <see cref="ChaosJudge"/> then scores the run and <see cref="ChaosReport"/> prints it.
/// </summary>
public sealed class ChaosRunner(ChaosScenario scenario, int seed, Action<string> progress)
{
    static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);
    const double StaleReadGrace = 5;
    readonly Random _rng = new(seed);
    readonly List<InjectedFault> _faults = [];
    readonly Dictionary<string, JobWatch> _jobs = [];
    readonly List<string> _doubleAssignments = [];

    /// <param name="httpPort">Serve the first silo's pages on this port, to watch the run (null: none).</param>
    public async Task<ChaosReport> Run(CancellationToken ct, int? httpPort = null)
    {
        var shape = scenario.Cluster;
        await using var cluster = await ProcessCluster.Start(shape.Silos, shape.Workers, progress, new ProcessClusterOptions(AllowChaos: true, Devices: shape.Devices, HttpPort: httpPort));
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
        var exited = new Dictionary<ChildProcess, double>();
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
        var judge = new ChaosJudge(scenario, seed, _faults, _jobs, _doubleAssignments, progress);
        return await judge.Score(grains, timedOut: clock.Elapsed.TotalSeconds >= scenario.Timeout, clock.Elapsed.TotalSeconds, ct);
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
            foreach (var twice in placed.GroupBy(p => (p.a.JobId, p.a.AssignmentEpoch)).Where(g => g.Count() > 1))
                _doubleAssignments.Add($"{twice.Key.JobId} assignment epoch {twice.Key.AssignmentEpoch} on {string.Join(", ", twice.Select(p => p.Node))} at {now:F1} s");
            foreach (var single in placed.Where(p => !p.a.Gang).GroupBy(p => p.a.JobId).Where(g => g.Select(p => p.a.AssignmentEpoch).Distinct().Count() > 1))
                _doubleAssignments.Add($"{single.Key} placed twice ({string.Join(", ", single.Select(p => $"{p.Node} assignment epoch {p.a.AssignmentEpoch}"))}) at {now:F1} s");
        }
        catch (Exception) { /* next poll */ }
    }

    async Task Inject(ProcessCluster cluster, IGrainFactory grains, ScenarioFault fault, double now, IReadOnlyList<string> ids, IReadOnlyList<int> firstOfJob)
    {
        var incident = new InjectedFault(fault, now);
        foreach (var j in _jobs.Values.Where(j => j.Info is { } i && !i.State.IsTerminal())) incident.StepsAtInjection[j.Id] = j.LastStep;
        _faults.Add(incident);
        var chaos = grains.GetGrain<IChaosGrain>("cluster");
        var node = fault.Target == "random" ? PickWorker(cluster)
            : fault.Target.StartsWith("job:") ? NodeOf(ids[firstOfJob[int.Parse(fault.Target[4..])]])
            : fault.Target;
        if (fault.Kind is ChaosFault.KillWorker or ChaosFault.HangWorker)
            foreach (var job in _jobs.Values.Where(j => j.RunsOn(node))) job.HitOnItsWorker = true;
        try
        {
            switch (fault.Kind)
            {
                case ChaosFault.KillSilo:
                    var hosts = (await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Keys.OrderBy(s => s.Endpoint.Port).ToList();
                    var silo = fault.Target == "random" ? hosts[_rng.Next(hosts.Count)] : hosts[int.Parse(fault.Target) % hosts.Count];
                    incident.Target = (await chaos.KillSilo(silo.ToParsableString())).Target;
                    break;
                case ChaosFault.KillWorker:
                    incident.Incarnation = (await grains.GetGrain<INodeGrain>(node).GetInfo()).Incarnation;
                    incident.Target = (await chaos.FaultNode(node, new NodeFault(FaultKind.KillWorker))).Target;
                    break;
                case ChaosFault.HangWorker:
                    incident.Incarnation = (await grains.GetGrain<INodeGrain>(node).GetInfo()).Incarnation;
                    incident.Target = (await chaos.FaultNode(node, new NodeFault(FaultKind.HangWorker, fault.For))).Target;
                    break;
                case ChaosFault.SlowNode:
                    incident.Target = (await chaos.FaultNode(node, new NodeFault(FaultKind.SlowNode, fault.For, DelayMs: fault.Delay))).Target;
                    break;
                case ChaosFault.DropCalls:
                    incident.Target = (await chaos.FaultNode(node, new NodeFault(FaultKind.DropCalls, fault.For, Rate: fault.Rate))).Target;
                    break;
                case ChaosFault.NanGradients:
                    incident.Target = (await chaos.NanGradients(ids[firstOfJob[fault.Job]], fault.Rank, fault.Steps)).Target;
                    break;
                case ChaosFault.RedisOutage:
                    var redis = cluster.RedisProcess;
                    redis.Freeze();
                    _ = Task.Delay(TimeSpan.FromSeconds(fault.For)).ContinueWith(_ => redis.Thaw(), TaskScheduler.Default);
                    incident.Target = $"redis-server (process {redis.Pid})";
                    break;
            }
        }
        catch (Exception e)
        {
            incident.Error = e.GetBaseException().Message;
        }
        progress($"{now:F1} s: {fault} → {incident.Target}{(incident.Error is null ? "" : $" (not injected: {incident.Error})")}");
    }

    string NodeOf(string jobId) => _jobs[jobId].Info is { } info
        ? info.Assignment?.NodeId ?? info.Ranks?.FirstOrDefault(r => info.Gang is { } g && g.Ranks.Count > 0 && r.AssignmentEpoch == g.Ranks[0])?.NodeId ?? "w1"
        : "w1";

    string PickWorker(ProcessCluster cluster)
    {
        var live = cluster.Workers.Where(w => !w.Value.HasExited).Select(w => w.Key).Order().ToList();
        return live.Count > 0 ? live[_rng.Next(live.Count)] : "w1";
    }

    async Task Detect(IGrainFactory grains, double now)
    {
        foreach (var incident in _faults.Where(i => i.Error is null))
        {
            if (incident.Detected is null && incident.Detectable)
            {
                try
                {
                    if (incident.Kind == ChaosFault.KillSilo)
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

    void RestartTheDead(ProcessCluster cluster, Dictionary<ChildProcess, double> exited, double now)
    {
        foreach (var (port, silo) in cluster.Silos.ToList().Where(s => s.Value.HasExited))
        {
            exited.TryAdd(silo, now);
            if (now - exited[silo] < scenario.RestartAfter) continue;
            cluster.Silos.Remove(port);
            _ = cluster.StartSilo();
        }
        foreach (var (node, worker) in cluster.Workers.ToList().Where(w => w.Value.HasExited))
        {
            exited.TryAdd(worker, now);
            if (now - exited[worker] < scenario.RestartAfter) continue;
            cluster.StartWorker(node);
        }
    }
}

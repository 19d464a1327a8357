namespace Orchestrator.Worker;

public sealed record NodeAgentOptions(string NodeId, IReadOnlyList<string> Devices)
{
    public TimeSpan HeartbeatPeriod { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Where ranks of data-parallel jobs listen for their peers (bound and advertised).</summary>
    public System.Net.IPAddress DataPlaneAddress { get; init; } = System.Net.IPAddress.Loopback;

    /// <summary>Where checkpoints are written and read (a shared volume when workers run on several hosts, so that a
    /// job moved to another node finds them).</summary>
    public string CheckpointDirectory { get; init; } = DefaultCheckpointDirectory;

    /// <summary>How often the checkpoint store is cleaned (<see cref="CheckpointJanitor"/>).</summary>
    public TimeSpan CheckpointCleanupPeriod { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Files of the checkpoint store younger than this are never removed (being written, or not yet reported).</summary>
    public TimeSpan CheckpointGrace { get; init; } = TimeSpan.FromMinutes(10);

    public static string DefaultCheckpointDirectory =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "orchestrator", "checkpoints");

    /// <summary>Apply the chaos faults heartbeat replies carry (worker --allow-chaos); otherwise they are logged and ignored.</summary>
    public bool AllowChaos { get; init; }
}

/// <summary>
/// The node's agent: heartbeats to its node grain every second and reconciles what runs here with the desired
/// assignments in the reply (start what is new, stop what was removed), like a kubelet.
/// </summary>
public sealed class NodeAgent(IGrainFactory grains, NodeAgentOptions options, ICheckpointStore checkpoints, WorkerChaos chaos, ILogger<NodeAgent> log)
{
    readonly Dictionary<string, ArrayRunner> _arrays = [];
    readonly Dictionary<string, RankRunner> _ranks = [];
    readonly string _incarnation = Guid.NewGuid().ToString("n")[..12];

    public IReadOnlyCollection<ArrayRunner> Arrays => _arrays.Values;

    // For the health endpoints: when the cluster last answered a heartbeat, and the lease it gave.
    DateTime _lastReply = DateTime.MinValue;
    TimeSpan? _lease;

    /// <summary>
    /// Ready while the cluster answers heartbeats within the node's lease (before the first answer: not yet ready);
    /// otherwise why not, in words for a probe's log.
    /// </summary>
    public (bool Ready, string Why) Readiness()
    {
        var (last, lease) = (_lastReply, _lease ?? TimeSpan.FromSeconds(10));
        if (last == DateTime.MinValue) return (false, "no heartbeat answered yet: is the cluster reachable?");
        var silent = DateTime.UtcNow - last;
        return silent <= lease ? (true, "ready") : (false, $"no heartbeat reply for {silent.TotalSeconds:F0} s (lease {lease.TotalSeconds:0} s)");
    }

    public async Task RunAsync(CancellationToken ct)
    {
        var node = grains.GetGrain<INodeGrain>(options.NodeId);
        var memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        log.NodeUp(options.NodeId, string.Join(",", options.Devices));
        using var timer = new PeriodicTimer(options.HeartbeatPeriod);
        // Heartbeats are sent every period anyway (never resent); a lost cluster makes two log lines, not one a second.
        var (lastReply, lease, leaseExpired) = (DateTime.UtcNow, (TimeSpan?)null, false);
        var reachability = new ReachabilityLog(what => log.Reachability(options.NodeId, what));
        do
        {
            if (lease is { } l && DateTime.UtcNow - lastReply > l && !leaseExpired)
            {
                // The cluster has declared this node dead by now and given its work to others (fencing would refuse
                // this work's reports anyway): stop training it; what is still wanted here starts again on reconnect.
                leaseExpired = true;
                var why = $"no heartbeat reply for {(DateTime.UtcNow - lastReply).TotalSeconds:F0} s, longer than the node's {l.TotalSeconds:0} s lease: its work is being rescheduled";
                log.LeaseExpired(options.NodeId, why);
                foreach (var a in _arrays.Values) a.StopAll(why, runAgainIfWanted: true);
                foreach (var r in _ranks.Values) r.Stop(why, runAgainIfWanted: true);
            }
            else if (DateTime.UtcNow - lastReply <= (lease ?? TimeSpan.MaxValue)) leaseExpired = false;
            try
            {
                var running = _arrays.Values.SelectMany(a => a.Members).Where(m => !m.Ended)
                    .Select(m => new RunningWork(m.JobId, m.Assignment.AssignmentEpoch, m.Step))
                    .Concat(_ranks.Values.Where(r => !r.Ended).Select(r => new RunningWork(r.Assignment.JobId, r.Assignment.AssignmentEpoch, r.Step)))
                    .ToList();
                var report = new NodeReport(_incarnation, options.Devices, memory, running, Environment.MachineName, Environment.ProcessId);
                var directive = await node.Heartbeat(report).WaitAsync(ct);
                reachability.Answered();
                (lastReply, lease) = (DateTime.UtcNow, directive.Lease);
                (_lastReply, _lease) = (lastReply, lease);
                foreach (var fault in directive.Faults ?? []) chaos.Apply(fault);
                Reconcile(directive.Desired);
            }
            catch (Exception e) when (Resilience.IsTransient(e) || e is OrleansException)
            {
                reachability.Failed(e);
            }
        } while (await Wait(timer, ct));

        foreach (var a in _arrays.Values) a.StopAll("worker shutting down");
        foreach (var r in _ranks.Values) r.Stop("worker shutting down");
        await Task.WhenAll(_arrays.Values.Select(a => a.Completion).Concat(_ranks.Values.Select(r => r.Completion)));
    }

    static async Task<bool> Wait(PeriodicTimer timer, CancellationToken ct)
    {
        try { return await timer.WaitForNextTickAsync(ct); }
        catch (OperationCanceledException) { return false; }
    }

    void Reconcile(IReadOnlyList<Assignment> desired)
    {
        ReconcileArrays(desired.Where(a => !a.Gang).ToList());
        ReconcileRanks(desired.Where(a => a.Gang).ToList());
    }

    /// <summary>Ranks of data-parallel jobs, one per assignment: stop the removed ones, start the new ones.</summary>
    void ReconcileRanks(IReadOnlyList<Assignment> desired)
    {
        var wanted = desired.ToDictionary(a => a.ArrayId);
        foreach (var (id, runner) in _ranks.ToList())
        {
            if (wanted.ContainsKey(id)) continue;
            if (!runner.Ended) runner.Stop("assignment removed from this node");
            else _ranks.Remove(id);
        }
        foreach (var a in desired)
        {
            // A rank that ended without the cluster knowing (it could not reach it) runs again.
            if (_ranks.TryGetValue(a.ArrayId, out var existing) && (!existing.Ended || existing.Settled)) continue;
            log.StartingRank(options.NodeId, a.ArrayId, a.JobId, a.Device);
            _ranks[a.ArrayId] = new RankRunner(grains, a, options.DataPlaneAddress, checkpoints, chaos, log);
        }
    }

    /// <summary>Stops members that are no longer wanted here; starts arrays that are new.</summary>
    void ReconcileArrays(IReadOnlyList<Assignment> desired)
    {
        var wanted = desired.ToDictionary(a => a.JobId);
        foreach (var (arrayId, runner) in _arrays.ToList())
        {
            foreach (var m in runner.Members.Where(m => !m.Ended))
            {
                if (!wanted.TryGetValue(m.JobId, out var a) || a.AssignmentEpoch != m.Assignment.AssignmentEpoch)
                    runner.Stop(m.JobId, a is null ? "assignment removed from this node" : $"replaced by assignment epoch {a.AssignmentEpoch}");
            }
            if (runner.Completion.IsCompleted && desired.All(a => a.ArrayId != arrayId)) _arrays.Remove(arrayId);
        }
        foreach (var group in desired.GroupBy(a => a.ArrayId))
        {
            if (_arrays.TryGetValue(group.Key, out var existing) && existing is not null)
            {
                // A finished runner whose members are still wanted could not start or report them: run those again.
                if (!existing.Completion.IsCompleted) continue;
                var settled = existing.Members.Where(m => m.Settled).Select(m => m.JobId).ToHashSet();
                if (group.All(a => settled.Contains(a.JobId))) continue;
            }
            var done = existing?.Members.Where(m => m.Settled).Select(m => m.JobId).ToHashSet() ?? [];
            var members = group.Where(a => !done.Contains(a.JobId)).ToList();
            log.StartingArray(options.NodeId, group.Key, members.Count, string.Join(", ", members.Select(m => m.JobId)), members[0].Device);
            _arrays[group.Key] = new ArrayRunner(grains, group.Key, members, checkpoints, log);
        }
    }

    /// <summary>Parses --devices: "cpu:4" is four CPU slots, "cuda:2" two GPUs, "cuda:0,cuda:3" those ids.</summary>
    public static IReadOnlyList<string> ParseDevices(string? text, Func<int> cudaCount)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            var gpus = cudaCount();
            return gpus > 0 ? Enumerable.Range(0, gpus).Select(i => $"cuda:{i}").ToList() : ["cpu:0"];
        }
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var p in parts)
        {
            var kv = p.Split(':');
            if (kv.Length != 2 || kv[0] is not ("cpu" or "cuda") || !int.TryParse(kv[1], out var n) || n < 0)
                throw new ArgumentException($"--devices '{text}': each entry must be cpu:N or cuda:N (for example cpu:4 or cuda:0,cuda:1)");
        }
        if (parts.Length == 1)
        {
            var kv = parts[0].Split(':');
            var count = int.Parse(kv[1]);
            if (count is < 1 or > 1024) throw new ArgumentException($"--devices '{text}': the count must be 1 to 1024");
            return Enumerable.Range(0, count).Select(i => $"{kv[0]}:{i}").ToList();
        }
        if (parts.Distinct().Count() != parts.Length) throw new ArgumentException($"--devices '{text}' names a device twice");
        return parts;
    }
}
